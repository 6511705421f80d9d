#![no_main]
//! containerd filter syntax: parsing any strings is an error or a filter, never a panic; a
//! parsed filter evaluates against any object without panic, and a list of filters matches
//! exactly when one of them does (or when every one is blank).

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ocicas::Filters;

#[derive(Arbitrary, Debug)]
struct Input {
    filters: Vec<String>,
    /// The object: field paths joined by '.', and their values.
    fields: BTreeMap<String, String>,
}

fuzz_target!(|input: Input| {
    let Ok(filters) = Filters::parse(&input.filters) else { return };
    let field = |path: &[String]| input.fields.get(&path.join(".")).cloned();
    let matched = filters.matches(field);
    let alternatives: Vec<&String> = input.filters.iter().filter(|f| !f.trim().is_empty()).collect();
    let any_matched = alternatives
        .iter()
        .any(|f| Filters::parse(&[f.as_str()]).expect("one of a parsed list parses alone").matches(field));
    assert_eq!(matched, alternatives.is_empty() || any_matched, "filters {:?} on {:?}", input.filters, input.fields);
});
