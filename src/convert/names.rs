//! The names a conversion gives: the partitioned copy while it is filled, the original
//! after the swap, and the prefix of its own objects in retentionc's schema.

use sha2::{Digest, Sha256};

use crate::model::{Ident, QualifiedName};
use crate::policy::ident::MAX_IDENT_BYTES;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversionNames {
    /// The partitioned table while it is filled (`<name>_intermediate`), in the table's schema.
    pub twin: Ident,
    /// The original after the swap (`<name>_retired`), in the table's schema.
    pub retired: Ident,
    /// Prefix of the conversion's log table and trigger function in retentionc's schema
    /// (`convert_<12 hex digits>`).
    pub objects: Ident,
}

impl ConversionNames {
    pub fn of(table: &QualifiedName) -> ConversionNames {
        let hash = hex::encode(Sha256::digest(table.to_string().as_bytes()));
        ConversionNames {
            twin: with_suffix(table, "_intermediate", &hash),
            retired: with_suffix(table, "_retired", &hash),
            objects: Ident::derived(format!("convert_{}", &hash[..12]))
                .expect("convert_ + hex digits is a plain name"),
        }
    }
}

/// `<name><suffix>`, or, past PostgreSQL's 63 bytes (which would silently truncate it),
/// `<start of name>_<8 hex digits of sha256(schema.table)><suffix>`.
fn with_suffix(table: &QualifiedName, suffix: &str, hash: &str) -> Ident {
    let plain = format!("{}{suffix}", table.name);
    if plain.len() <= MAX_IDENT_BYTES {
        return Ident::derived(plain).expect("a plain name and a plain suffix");
    }
    // Names are ASCII, so any cut is a character boundary.
    let keep = MAX_IDENT_BYTES - suffix.len() - 9;
    Ident::derived(format!(
        "{}_{}{suffix}",
        &table.name.as_str()[..keep],
        &hash[..8]
    ))
    .expect("a plain name, hex digits and a plain suffix")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_postgresql_and_stay_apart() {
        let names = |t: &str| ConversionNames::of(&QualifiedName::parse(t).unwrap());
        let short = names("public.orders");
        assert_eq!(short.twin.as_str(), "orders_intermediate");
        assert_eq!(short.retired.as_str(), "orders_retired");
        assert!(short.objects.as_str().starts_with("convert_"));
        assert_eq!(short.objects.as_str().len(), 20);
        assert_ne!(short.objects, names("audit.orders").objects);
        let long_a = names(&format!("public.{}a", "e".repeat(62)));
        let long_b = names(&format!("public.{}b", "e".repeat(62)));
        for n in [&long_a, &long_b] {
            assert_eq!(n.twin.as_str().len(), 63, "{}", n.twin);
            assert!(n.twin.as_str().ends_with("_intermediate"));
            assert!(n.retired.as_str().len() <= 63);
            assert!(n.retired.as_str().ends_with("_retired"));
        }
        assert_ne!(long_a.twin, long_b.twin);
        assert_ne!(long_a.retired, long_b.retired);
    }
}
