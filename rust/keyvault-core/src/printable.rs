//! Text that is safe to put on a terminal. Anything that came from a server, a URL, a vault or a
//! config file may hold escape sequences (CSI colour or cursor moves, OSC titles and hyperlinks),
//! carriage returns that overwrite a line, or bidirectional overrides that reorder what is shown.
//! Such characters are replaced, never passed through.

/// What stands in for a character that must not reach a terminal.
pub const REPLACEMENT: char = '?';

/// True for characters that change how a terminal shows text rather than being text: C0 and C1
/// controls (ESC, CR, BEL, NUL...), DEL, bidirectional embeddings/overrides/isolates and marks,
/// zero-width characters that can hide text, and the byte order mark.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
        )
}

/// `text` with every unsafe character (see [`is_unsafe`]) replaced by [`REPLACEMENT`].
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if is_unsafe(c) { REPLACEMENT } else { c })
        .collect()
}

/// Like [`printable`], but keeps `\n`: for messages that the core itself lays out on several
/// lines (the credential chain's one line per link).
pub fn printable_lines(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c != '\n' && is_unsafe(c) {
                REPLACEMENT
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_controls_are_replaced() {
        assert_eq!(printable("a\x1b[2Jb"), "a?[2Jb");
        assert_eq!(printable("x\ry\0z\x07\x7f"), "x?y?z??");
        assert_eq!(printable("\u{9b}31m"), "?31m");
        assert_eq!(printable("tab\there"), "tab?here");
        assert_eq!(printable("line\nnext"), "line?next");
    }

    #[test]
    fn bidi_overrides_and_invisible_characters_are_replaced() {
        assert_eq!(printable("abc\u{202E}fed"), "abc?fed");
        assert_eq!(printable("a\u{2066}b\u{2069}"), "a?b?");
        assert_eq!(printable("zero\u{200B}width\u{FEFF}"), "zero?width?");
    }

    #[test]
    fn ordinary_text_is_unchanged() {
        let text = "vault https://contoso.vault.azure.net/ said 403 (ForbiddenByRbac) — Grüße 秘密";
        assert_eq!(printable(text), text);
    }

    #[test]
    fn printable_lines_keeps_newlines_only() {
        assert_eq!(printable_lines("a\nb\r\nc\x1b"), "a\nb?\nc?");
    }
}
