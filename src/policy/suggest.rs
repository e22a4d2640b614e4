//! "Did you mean …?" for misspelt keys and values.

/// The candidate closest to `found` by edit distance, if it is close enough to be a
/// plausible typo (about a third of the word).
pub fn nearest<'a>(found: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let length = found.chars().count();
    // A swap of two letters ("dorp") costs two edits; allow that from four letters on.
    let limit = if length >= 4 { (length / 3).max(2) } else { 1 };
    candidates
        .iter()
        .map(|c| (edit_distance(found, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys_only() {
        let keys = ["table", "partitioning", "retention", "deletes", "schedule"];
        assert_eq!(nearest("retension", &keys), Some("retention"));
        assert_eq!(nearest("tabel", &keys), Some("table"));
        assert_eq!(nearest("colour", &keys), None);
        assert_eq!(
            nearest("dorp", &["drop", "detach", "archive"]),
            Some("drop")
        );
    }
}
