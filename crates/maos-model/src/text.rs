//! Bounded text for messages built from outside bytes.

/// The longest prefix of `text` that is at most `max_bytes` long and ends on a
/// character boundary (`String::truncate` panics inside a character, and error
/// messages quote whatever the input held).
#[must_use]
pub fn prefix_within(text: &str, max_bytes: usize) -> &str {
    let mut end = max_bytes.min(text.len());
    while !text.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    text.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::prefix_within;

    #[test]
    fn cuts_on_a_character_boundary() {
        assert_eq!(prefix_within("abc", 10), "abc");
        assert_eq!(prefix_within("abc", 2), "ab");
        assert_eq!(prefix_within("éé", 3), "é");
        assert_eq!(prefix_within("é", 1), "");
    }
}
