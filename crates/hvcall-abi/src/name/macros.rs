//! `register_names!`: declares each register name once, as a constant and as
//! an entry of its module's table.

/// Declares, for every `CONST = number, "TlfsName", "short";` line, a public
/// [`HvRegisterName`](crate::name::HvRegisterName) constant and a
/// [`RegisterEntry`](crate::name::RegisterEntry) of the table `$table`
/// (in declaration order, which must be ascending by number).
macro_rules! register_names {
    (
        $(#[$tmeta:meta])*
        $vis:vis const $table:ident: $arch:expr;
        $( $cname:ident = $num:literal, $tlfs:literal, $short:literal; )*
    ) => {
        $(
            #[doc = concat!("`", $tlfs, "` = `", stringify!($num), "` (short name `", $short, "`).")]
            pub const $cname: $crate::name::HvRegisterName = $crate::name::HvRegisterName($num);
        )*

        $(#[$tmeta])*
        $vis const $table: &[$crate::name::RegisterEntry] = &[
            $(
                $crate::name::RegisterEntry {
                    name: $tlfs,
                    short: $short,
                    number: $cname,
                    arch: $arch,
                },
            )*
        ];
    };
}
