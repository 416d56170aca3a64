//! The OpenAPI schemas of parameter values every route reads the same way, so that the
//! document says exactly what the server accepts: a generated client or a schema-driven
//! fuzzer (schemathesis, in the tests) then sends only what is answered `2xx` when it means
//! to, and only what is answered `4xx` when it means not to.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};

/// No control character (Unicode category Cc), as `char::is_control` reads it: what every
/// free-text parameter and field of the API refuses.
pub const PRINTABLE: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$";

fn string(format: KnownFormat) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(format)))
}

/// The empty string: a form's field left blank, which the server reads as "not given".
fn empty() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String).max_length(Some(0))
}

/// A list of `item`s (a repeatable parameter).
pub fn list_of(item: Schema) -> Schema {
    ArrayBuilder::new().items(RefOr::T(item)).build().into()
}

/// A time parameter (`from`, `to`): RFC 3339, or a date meaning midnight UTC at its start.
pub fn instant() -> Schema {
    AnyOfBuilder::new()
        .item(string(KnownFormat::DateTime))
        .item(string(KnownFormat::Date))
        .description(Some(
            "RFC 3339 (2026-11-20T14:03:11Z) or a date (2026-11-20, midnight UTC)",
        ))
        .build()
        .into()
}

/// A time parameter of a form whose empty fields mean "not given" (the requests' filters).
pub fn instant_or_empty() -> Schema {
    AnyOfBuilder::new()
        .item(string(KnownFormat::DateTime))
        .item(string(KnownFormat::Date))
        .item(empty())
        .description(Some("RFC 3339 or a date; empty means not given"))
        .build()
        .into()
}

/// An RFC 3339 time (no plain date), or empty (not given).
pub fn rfc3339_or_empty() -> Schema {
    AnyOfBuilder::new()
        .item(string(KnownFormat::DateTime))
        .item(empty())
        .build()
        .into()
}

/// Free text of at most `max` characters, no control character; empty allowed.
pub fn printable(max: usize) -> Schema {
    printable_text(max).build().into()
}

/// A filter's text: 1 to `max` characters, no control character.
pub fn text(max: usize) -> Schema {
    printable_text(max).min_length(Some(1)).build().into()
}

fn printable_text(max: usize) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(max))
        .pattern(Some(PRINTABLE))
}

/// One of `words`, spelled exactly.
pub fn one_of(words: &[&str]) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(words.iter().copied()))
        .build()
        .into()
}

/// One of `words`, or empty (not given).
pub fn one_of_or_empty(words: &[&str]) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(words.iter().copied().chain([""])))
        .build()
        .into()
}

/// A whole number from 0 up, or empty (not given).
pub fn whole_or_empty() -> Schema {
    AnyOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0.0)))
        .item(empty())
        .build()
        .into()
}

/// Declares a unit type whose OpenAPI schema is `$schema`, for a field's `value_type` (with
/// `inline`): unlike `schema_with`, that keeps the field's description and whether it is
/// required.
#[macro_export]
macro_rules! schema_type {
    ($(#[$doc:meta])* $vis:vis $name:ident => $schema:expr) => {
        $(#[$doc])*
        #[derive(Debug)]
        $vis struct $name;
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::RefOr::T($schema)
            }
        }
        impl utoipa::ToSchema for $name {}
    };
}

schema_type!(
    /// [`instant`].
    pub Instant => instant()
);
schema_type!(
    /// [`instant_or_empty`].
    pub InstantOrEmpty => instant_or_empty()
);
schema_type!(
    /// [`whole_or_empty`].
    pub WholeOrEmpty => whole_or_empty()
);
schema_type!(
    /// [`rfc3339_or_empty`].
    pub Rfc3339OrEmpty => rfc3339_or_empty()
);
