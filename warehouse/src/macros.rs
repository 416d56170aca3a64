//! `wire_enum!`: string-valued enums with Graph's spellings and helpful parse errors.

/// Declares a string-valued enum with its wire spelling (Graph's camelCase), the spelling
/// of Graph's CSV exports (PascalCase), and parsing that names the allowed values.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident, field = $field:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal / $graph:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $wire)] $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire spelling (Graph's camelCase enum member).
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }

            /// The spelling used in Graph's CSV report exports (PascalCase).
            pub fn graph_export_name(self) -> &'static str {
                match self { $($name::$variant => $graph),+ }
            }

            /// Parses the wire spelling; the error lists every accepted value.
            pub fn parse(value: &str) -> Result<Self, $crate::model::UnknownValue> {
                match value {
                    $($wire => Ok($name::$variant),)+
                    _ => Err($crate::model::UnknownValue {
                        field: $field,
                        value: value.to_owned(),
                        allowed: [$($wire),+].join(", "),
                    }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::model::UnknownValue;
            fn from_str(value: &str) -> Result<Self, Self::Err> {
                Self::parse(value)
            }
        }
    };
}
