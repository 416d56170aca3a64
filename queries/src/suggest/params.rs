//! A request for suggestions from `key=value` parameters (query string or command line).

use super::*;

/// What a caller asked for besides the request itself.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSuggest {
    /// The request.
    pub request: SuggestRequest,
    /// `format`, as given (each caller knows its own formats).
    pub format: Option<String>,
    /// Show at most this many suggestions.
    pub limit: Option<usize>,
    /// Skip this many first (paging; 0 unless given).
    pub offset: usize,
    /// `id` (repeatable or comma-separated): only these suggestions, as the dashboards'
    /// selection exports them. Empty: every suggestion.
    pub ids: BTreeSet<String>,
}

impl ParsedSuggest {
    /// The suggestions asked for, best first: `offset` skipped, at most `limit` of them.
    pub async fn run(&self, warehouse: &Warehouse) -> Result<Vec<Suggestion>, QueryError> {
        Ok(self.page(self.every(warehouse).await?))
    }

    /// Every suggestion asked for (only the `id`s given, if any), best first, before paging;
    /// [`ParsedSuggest::page`] names the users and devices of the page's.
    pub async fn every(&self, warehouse: &Warehouse) -> Result<Ranked, QueryError> {
        let mut found = ranked(warehouse, &self.request).await?;
        if !self.ids.is_empty() {
            found.retain(|s| self.ids.contains(&s.id));
        }
        Ok(found)
    }

    /// The page of `found` asked for: `offset` skipped, at most `limit` kept.
    pub fn page(&self, found: Ranked) -> Vec<Suggestion> {
        found.page(self.offset, self.limit)
    }
}

impl SuggestRequest {
    /// Builds a request from `key=value` parameters (query string or command line): `from`,
    /// `to` (default: the 30 days before now), `kind` and `trustedPublisher` (repeatable or
    /// comma-separated), `limit`, `offset`, `format`, and any threshold by name (`minEvents=20`).
    pub fn parse(
        tenant: &str,
        params: &[(String, String)],
        now: DateTime<Utc>,
        imported: Vec<RulesPolicy>,
    ) -> Result<ParsedSuggest, QueryError> {
        let bad = QueryError::BadParameter;
        let mut from = None;
        let mut to = None;
        let mut request = SuggestRequest::new(tenant, now, now);
        let mut format = None;
        let mut limit = None;
        let mut offset = 0;
        let mut ids = BTreeSet::new();
        let mut seen = BTreeSet::new();
        for (key, value) in params {
            let repeatable = matches!(key.as_str(), "kind" | "trustedPublisher" | "id");
            if !repeatable && !seen.insert(key.as_str()) {
                return Err(bad(format!("{key} is given twice")));
            }
            crate::request::check_text(key, value)?;
            match key.as_str() {
                "from" => from = Some(crate::request::parse_instant(key, value)?),
                "to" => to = Some(crate::request::parse_instant(key, value)?),
                "kind" => {
                    for kind in value.split(',') {
                        request.kinds.insert(SuggestionKind::parse(kind.trim())?);
                    }
                }
                "trustedPublisher" => {
                    request.trusted_publishers.insert(value.trim().to_owned());
                }
                "format" => format = Some(value.clone()),
                "id" => ids.extend(
                    value
                        .split(',')
                        .map(|id| id.trim().to_owned())
                        .filter(|id| !id.is_empty()),
                ),
                "limit" => {
                    limit = Some(
                        value
                            .parse::<usize>()
                            .ok()
                            .filter(|n| *n > 0)
                            .ok_or_else(|| bad(format!("limit {value:?} must be a whole number from 1 up")))?,
                    );
                }
                "offset" => {
                    offset = value
                        .parse::<usize>()
                        .map_err(|_| bad(format!("offset {value:?} must be a whole number from 0 up")))?;
                }
                other => {
                    if !request.thresholds.set(other, value)? {
                        return Err(bad(format!(
                            "unknown parameter {other:?}; suggestions take from, to, kind, trustedPublisher, id, limit, offset, \
                             format and the thresholds {}",
                            Thresholds::NAMES.join(", ")
                        )));
                    }
                }
            }
        }
        request.to = to.unwrap_or(now);
        request.from = from.unwrap_or(request.to - chrono::Duration::days(30));
        if request.from >= request.to {
            return Err(bad(format!(
                "from ({}) must be before to ({})",
                request.from, request.to
            )));
        }
        request.imported = imported;
        Ok(ParsedSuggest {
            request,
            format,
            limit,
            offset,
            ids,
        })
    }
}
