//! containerd's filter syntax, for walking blobs and listing ingests.
//!
//! A filter is selectors joined by `,` (all must match); several filters are alternatives (any
//! may match). A selector is a field path (`digest`, `labels.env`, `labels."a.b"`), alone to test
//! presence, or followed by `==`, `!=` or `~=` (regular expression) and a value, bare or quoted.

use regex::Regex;

use crate::error::{Result, invalid_argument};

#[derive(Debug, Clone)]
pub struct Filters {
    /// Alternatives (OR) of selector lists (AND). Empty: everything matches.
    alternatives: Vec<Vec<Selector>>,
}

#[derive(Debug, Clone)]
struct Selector {
    field_path: Vec<String>,
    operator: Operator,
}

#[derive(Debug, Clone)]
enum Operator {
    Present,
    Equal(String),
    NotEqual(String),
    Matches(Regex),
}

impl Filters {
    /// Parses each string as one filter; an empty list or only empty strings match everything.
    pub fn parse<S: AsRef<str>>(filters: &[S]) -> Result<Filters> {
        let alternatives = filters
            .iter()
            .map(|f| f.as_ref())
            .filter(|f| !f.trim().is_empty())
            .map(parse_filter)
            .collect::<Result<_>>()?;
        Ok(Filters { alternatives })
    }

    /// Whether an object matches; `field` returns the value of a field path, or `None` when
    /// the object has no such field.
    pub fn matches(&self, field: impl Fn(&[String]) -> Option<String>) -> bool {
        self.alternatives.is_empty()
            || self.alternatives.iter().any(|selectors| selectors.iter().all(|s| s.matches(&field)))
    }
}

impl Selector {
    fn matches(&self, field: &impl Fn(&[String]) -> Option<String>) -> bool {
        let value = field(&self.field_path);
        match &self.operator {
            Operator::Present => value.is_some(),
            Operator::Equal(expected) => value.as_deref() == Some(expected),
            Operator::NotEqual(expected) => value.as_deref() != Some(expected),
            Operator::Matches(regex) => value.is_some_and(|v| regex.is_match(&v)),
        }
    }
}

fn parse_filter(text: &str) -> Result<Vec<Selector>> {
    let mut cursor = Cursor { text, pos: 0 };
    let mut selectors = Vec::new();
    loop {
        selectors.push(cursor.selector()?);
        cursor.skip_spaces();
        match cursor.peek() {
            None => return Ok(selectors),
            Some(',') => cursor.pos += 1,
            Some(c) => return Err(cursor.error(&format!("unexpected {c:?}"))),
        }
    }
}

struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn skip_spaces(&mut self) {
        while let Some(space) = self.peek().filter(|c| c.is_whitespace()) {
            // Whitespace is not only ASCII (U+0085, U+3000…): step over the whole character.
            self.pos += space.len_utf8();
        }
    }

    fn error(&self, what: &str) -> crate::error::Error {
        invalid_argument(format!("invalid filter {:?} at offset {}: {what}", self.text, self.pos))
    }

    fn selector(&mut self) -> Result<Selector> {
        self.skip_spaces();
        let mut field_path = vec![self.field()?];
        while self.peek() == Some('.') {
            self.pos += 1;
            field_path.push(self.field()?);
        }
        self.skip_spaces();
        let operator = if self.rest().starts_with("==") {
            self.pos += 2;
            Operator::Equal(self.value()?)
        } else if self.rest().starts_with("!=") {
            self.pos += 2;
            Operator::NotEqual(self.value()?)
        } else if self.rest().starts_with("~=") {
            self.pos += 2;
            let pattern = self.value()?;
            Operator::Matches(Regex::new(&pattern).map_err(|e| self.error(&format!("bad regular expression: {e}")))?)
        } else {
            Operator::Present
        };
        Ok(Selector { field_path, operator })
    }

    fn field(&mut self) -> Result<String> {
        if self.peek() == Some('"') {
            return self.quoted();
        }
        let len = self
            .rest()
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(self.rest().len());
        if len == 0 {
            return Err(self.error("expected a field name"));
        }
        let field = self.rest()[..len].to_owned();
        self.pos += len;
        Ok(field)
    }

    fn value(&mut self) -> Result<String> {
        self.skip_spaces();
        if self.peek() == Some('"') {
            return self.quoted();
        }
        let len = self.rest().find(|c: char| c == ',' || c.is_whitespace()).unwrap_or(self.rest().len());
        if len == 0 {
            return Err(self.error("expected a value"));
        }
        let value = self.rest()[..len].to_owned();
        self.pos += len;
        Ok(value)
    }

    fn quoted(&mut self) -> Result<String> {
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, escaped)) => out.push(escaped),
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err(self.error("unterminated quoted string"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn object(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn matches(filters: &[&str], fields: &BTreeMap<String, String>) -> bool {
        Filters::parse(filters).unwrap().matches(|path| fields.get(&path.join(".")).cloned())
    }

    #[test]
    fn multibyte_whitespace_is_skipped_whole() {
        let o = object(&[("labels.env", "prod")]);
        assert!(matches(&["\u{3000}labels.env\u{85}==\u{2003}prod"], &o));
        // Found by the filters fuzz target: a panic on a char boundary before.
        assert!(Filters::parse(&["]\u{85}\0\u{f}"]).is_err());
    }

    #[test]
    fn equality_inequality_presence_and_regex() {
        let o = object(&[("digest", "sha256:aa"), ("labels.env", "prod"), ("labels.a.b", "x")]);
        assert!(matches(&[], &o));
        assert!(matches(&["labels.env==prod"], &o));
        assert!(!matches(&["labels.env==dev"], &o));
        assert!(matches(&["labels.env!=dev"], &o));
        assert!(matches(&["labels.missing!=x"], &o));
        assert!(matches(&["labels.env"], &o));
        assert!(!matches(&["labels.missing"], &o));
        assert!(matches(&["digest~=^sha256:"], &o));
        assert!(matches(&[r#"labels."a.b"=="x""#], &o));
    }

    #[test]
    fn comma_is_and_and_several_filters_are_or() {
        let o = object(&[("labels.env", "prod"), ("size", "5")]);
        assert!(matches(&["labels.env==prod,size==5"], &o));
        assert!(!matches(&["labels.env==prod,size==6"], &o));
        assert!(matches(&["size==6", "labels.env==prod"], &o));
    }

    #[test]
    fn malformed_filters_are_invalid_arguments() {
        for bad in ["==x", "labels.", "a==", "a~=(", "a==\"open", "a b"] {
            let err = Filters::parse(&[bad]).unwrap_err();
            assert_eq!(err.kind(), crate::error::ErrorKind::InvalidArgument, "{bad}");
        }
    }
}
