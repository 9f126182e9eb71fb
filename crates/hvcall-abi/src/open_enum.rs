//! A small "open enum" macro: a transparent newtype over an ABI integer with
//! named constants. Unlike a Rust `enum`, every bit pattern is a valid value,
//! so numbers read from a guest never need a fallible conversion.

/// Defines a newtype over `$repr` with associated constants, a `name()`
/// lookup and an `ALL` table of the named values.
macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        pub struct $name:ident($repr:ty) {
            $(
                $(#[$cmeta:meta])*
                $cname:ident = $value:expr,
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord,
            zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable, zerocopy::KnownLayout,
        )]
        #[repr(transparent)]
        pub struct $name(pub $repr);

        impl $name {
            $(
                $(#[$cmeta])*
                pub const $cname: Self = Self($value);
            )*

            /// Every named value with its constant name, in declaration order.
            pub const ALL: &'static [(&'static str, Self)] = &[
                $((stringify!($cname), Self::$cname),)*
            ];

            /// The constant name of this value, if it has one.
            pub fn name(self) -> Option<&'static str> {
                Self::ALL.iter().find(|(_, v)| *v == self).map(|(n, _)| *n)
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self.name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, "{}({:#x})", stringify!($name), self.0),
                }
            }
        }

        impl From<$repr> for $name {
            fn from(v: $repr) -> Self {
                Self(v)
            }
        }

        impl From<$name> for $repr {
            fn from(v: $name) -> $repr {
                v.0
            }
        }
    };
}
