//! Intune's four built-in EPM roles and what each may do: THE permission table. Every admin
//! route names the one permission it needs; the README's table is generated from
//! [`readme_table`] and checked against it, and the integration tests try every role on every
//! route.

use serde::{Deserialize, Serialize};

use crate::ControlError;

/// A permission an admin route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Permission {
    /// Policy Authoring > View Reports: reports, suggestions, rule exports.
    ViewReports,
    /// Policy Authoring > Read: the tenant's settings and imported rules policies.
    Read,
    /// Create, list and revoke the tenant's keys (Policy Authoring > Create, Update, Delete).
    ManageKeys,
    /// Change the tenant's settings: reporting cap, retention (Policy Authoring > Update).
    ManageTenant,
    /// Import rules policies (Policy Authoring > Create, Update).
    ImportRules,
    /// Read the audit log (Intune's Audit data > Read).
    ViewAudit,
    /// Elevation Requests > View elevation requests.
    ViewElevationRequests,
    /// Elevation Requests > Modify elevation requests (approve, deny, revoke).
    ModifyElevationRequests,
}

impl Permission {
    /// Every permission, in the order the README lists them.
    pub const ALL: [Permission; 8] = [
        Permission::ViewReports,
        Permission::Read,
        Permission::ManageKeys,
        Permission::ManageTenant,
        Permission::ImportRules,
        Permission::ViewAudit,
        Permission::ViewElevationRequests,
        Permission::ModifyElevationRequests,
    ];

    /// The permission as the README and error messages name it.
    pub fn label(self) -> &'static str {
        match self {
            Permission::ViewReports => "View Reports",
            Permission::Read => "Read",
            Permission::ManageKeys => "Manage Keys",
            Permission::ManageTenant => "Manage Tenant",
            Permission::ImportRules => "Import Rules",
            Permission::ViewAudit => "View Audit",
            Permission::ViewElevationRequests => "View Elevation Requests",
            Permission::ModifyElevationRequests => "Modify Elevation Requests",
        }
    }
}

/// The built-in roles of Intune's EPM RBAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Endpoint Privilege Manager: everything.
    EndpointPrivilegeManager,
    /// Endpoint Security Manager: everything.
    EndpointSecurityManager,
    /// Endpoint Privilege Reader: view reports, read, view elevation requests, view audit.
    EndpointPrivilegeReader,
    /// Read Only Operator: view reports, read, view elevation requests, view audit.
    ReadOnlyOperator,
}

impl Role {
    /// Every role, in the order the README lists them.
    pub const ALL: [Role; 4] = [
        Role::EndpointPrivilegeManager,
        Role::EndpointSecurityManager,
        Role::EndpointPrivilegeReader,
        Role::ReadOnlyOperator,
    ];

    /// The role's name as written on the command line and stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::EndpointPrivilegeManager => "endpoint-privilege-manager",
            Role::EndpointSecurityManager => "endpoint-security-manager",
            Role::EndpointPrivilegeReader => "endpoint-privilege-reader",
            Role::ReadOnlyOperator => "read-only-operator",
        }
    }

    /// Parses a role name; the error lists the roles.
    pub fn parse(text: &str) -> Result<Role, ControlError> {
        Role::ALL.into_iter().find(|r| r.as_str() == text).ok_or_else(|| {
            let names: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
            ControlError::Invalid(format!("--role {text:?} is not one of {}", names.join(", ")))
        })
    }

    /// Whether the role carries a permission. Intune's EPM documentation gives the managers
    /// every EPM permission and the reader roles View Reports, Read and View elevation
    /// requests. The audit log is the EPM trail of who changed what: the readers get it
    /// with their Read (Intune's Read Only Operator also carries Audit data > Read), so an
    /// auditor needs no role that can change anything.
    pub fn allows(self, permission: Permission) -> bool {
        match self {
            Role::EndpointPrivilegeManager | Role::EndpointSecurityManager => true,
            Role::EndpointPrivilegeReader | Role::ReadOnlyOperator => matches!(
                permission,
                Permission::ViewReports | Permission::Read | Permission::ViewAudit | Permission::ViewElevationRequests
            ),
        }
    }
}

/// The permission table as a Markdown table: one row per permission, one column per role.
pub fn readme_table() -> String {
    let mut text = String::from("| permission |");
    for role in Role::ALL {
        text.push_str(&format!(" `{}` |", role.as_str()));
    }
    text.push_str("\n| --- |");
    text.push_str(&" --- |".repeat(Role::ALL.len()));
    text.push('\n');
    for permission in Permission::ALL {
        text.push_str(&format!("| {} |", permission.label()));
        for role in Role::ALL {
            text.push_str(if role.allows(permission) { " yes |" } else { " no |" });
        }
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_mirror_intune_rbac() {
        // Intune's documentation, role by role (epm-domain.md, RBAC).
        let readers = [
            Permission::ViewReports,
            Permission::Read,
            Permission::ViewAudit,
            Permission::ViewElevationRequests,
        ];
        for permission in Permission::ALL {
            assert!(Role::EndpointPrivilegeManager.allows(permission), "{permission:?}");
            assert!(Role::EndpointSecurityManager.allows(permission), "{permission:?}");
            for reader in [Role::EndpointPrivilegeReader, Role::ReadOnlyOperator] {
                assert_eq!(
                    reader.allows(permission),
                    readers.contains(&permission),
                    "{reader:?} {permission:?}"
                );
            }
        }
        assert!(
            Role::parse("admin")
                .unwrap_err()
                .to_string()
                .contains("endpoint-privilege-manager")
        );
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()).unwrap(), role);
        }
    }

    #[test]
    fn the_readme_table_has_a_row_per_permission() {
        let table = readme_table();
        assert_eq!(table.lines().count(), 2 + Permission::ALL.len());
        assert!(table.contains("| Manage Keys | yes | yes | no | no |"), "{table}");
    }
}
