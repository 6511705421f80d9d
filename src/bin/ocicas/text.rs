//! Text output made safe to print: what a layout holds (media types, ref names, and the error
//! messages that quote them) is written by whoever wrote the layout, and a newline, tab or
//! escape sequence in it would forge lines of the output or reach the operator's terminal.

use std::borrow::Cow;

/// `text` with each control character (a newline, tab, ESC, DEL, C1) written as its Rust
/// escape (`\n`, `\t`, `\u{1b}`): one line, no field separator and nothing a terminal obeys.
pub(crate) fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            escaped.extend(c.escape_debug());
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

#[cfg(test)]
mod tests {
    use super::escape_controls;

    #[test]
    fn control_characters_are_escaped_and_other_text_is_kept() {
        assert_eq!(escape_controls("application/vnd.oci.image.layer.v1.tar"), "application/vnd.oci.image.layer.v1.tar");
        assert_eq!(escape_controls("a\tb\nc\u{1b}[2K\u{7f}\u{9b}é"), "a\\tb\\nc\\u{1b}[2K\\u{7f}\\u{9b}é");
    }
}
