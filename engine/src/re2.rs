//! Regular expressions as Google SecOps reads them: RE2 syntax, run by the
//! `regex` crate.
//!
//! The two agree on almost everything detection rules write. Where they
//! differ, the pattern is rewritten so that it means what it means in RE2:
//!
//! - `\d`, `\w`, `\s` and `\b` are ASCII-only in RE2 and Unicode-aware in
//!   the crate; they become explicit ASCII classes.
//! - A `{` that does not start a repetition (`{2}`, `{2,}`, `{2,5}`) is a
//!   literal in RE2 and an error in the crate; it is escaped.
//! - Octal escapes (`\0`, `\012`) and `\Q...\E` quoting exist only in RE2;
//!   they become `\x{..}` escapes and escaped literals.
//!
//! What RE2 refuses is refused with the place in the pattern: back
//! references (`\1`), look-around, `\C`, `\Z`.

use regex::{Regex, RegexBuilder};

/// The most a compiled regex may take, in bytes. It bounds guest memory;
/// real detection patterns need a few kilobytes.
pub(crate) const SIZE_LIMIT: usize = 4 << 20;

/// Why a pattern was refused: the character offset in the pattern, when
/// one place is at fault, and what was wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatternError {
    pub offset: Option<usize>,
    pub message: String,
}

/// Compiles an RE2 pattern, unanchored, case-insensitive with `nocase`.
/// The flag is written into the pattern, as `(?i:...)`, so that the
/// compiled regex's [`Regex::as_str`] means the same on its own: the
/// prefilter joins those into one set.
pub fn compile(pattern: &str, nocase: bool) -> Result<Regex, PatternError> {
    let translated = translate(pattern)?;
    let source = if nocase { format!("(?i:{translated})") } else { translated };
    RegexBuilder::new(&source).size_limit(SIZE_LIMIT).build().map_err(|err| {
        let text = err.to_string();
        let last = text.lines().last().unwrap_or("").trim();
        let detail = last.strip_prefix("error: ").unwrap_or(last).to_string();
        PatternError { offset: None, message: detail }
    })
}

/// Rewrites an RE2 pattern into one the `regex` crate reads the same way.
pub fn translate(pattern: &str) -> Result<String, PatternError> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut i = 0;
    // Depth of `[...]`: inside a class the ASCII classes lose their
    // brackets, and `{` is an ordinary character.
    let mut in_class = false;
    let fail = |offset: usize, message: &str| {
        Err(PatternError { offset: Some(offset), message: message.to_string() })
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                let Some(&next) = chars.get(i + 1) else {
                    return fail(i, "a trailing `\\` escapes nothing");
                };
                match next {
                    'd' | 'D' | 'w' | 'W' | 's' | 'S' => {
                        out.push_str(ascii_class(next, in_class));
                        i += 2;
                    }
                    'b' | 'B' if !in_class => {
                        out.push_str(if next == 'b' { r"(?-u:\b)" } else { r"(?-u:\B)" });
                        i += 2;
                    }
                    '0'..='7' => {
                        let digits: String =
                            chars[i + 1..].iter().take(3).take_while(|c| c.is_digit(8)).collect();
                        if next != '0' && digits.len() == 1 {
                            return fail(
                                i,
                                "back references such as `\\1` are not supported by RE2",
                            );
                        }
                        let code = u32::from_str_radix(&digits, 8).unwrap_or(0);
                        out.push_str(&format!("\\x{{{code:x}}}"));
                        i += 1 + digits.len();
                    }
                    '8' | '9' => {
                        return fail(i, "back references such as `\\1` are not supported by RE2")
                    }
                    'Q' => {
                        let body_start = i + 2;
                        let mut j = body_start;
                        while j < chars.len()
                            && !(chars[j] == '\\' && chars.get(j + 1) == Some(&'E'))
                        {
                            j += 1;
                        }
                        let literal: String = chars[body_start..j].iter().collect();
                        out.push_str(&regex::escape(&literal));
                        i = (j + 2).min(chars.len());
                    }
                    'C' => return fail(i, "`\\C` (any byte) is not supported"),
                    'Z' => return fail(i, "`\\Z` is not supported by RE2; use `\\z` or `$`"),
                    _ => {
                        out.push('\\');
                        out.push(next);
                        i += 2;
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                i += 1;
                // A `]` or `^]` right after the opening bracket is literal.
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                if chars.get(i) == Some(&']') {
                    out.push_str("\\]");
                    i += 1;
                }
            }
            '[' if chars.get(i + 1) == Some(&':') => {
                // A POSIX class such as `[:alpha:]` inside a class.
                let end = (i + 2..chars.len().saturating_sub(1))
                    .find(|&j| chars[j] == ':' && chars[j + 1] == ']');
                let end = end.map_or(i + 1, |j| j + 2);
                out.extend(&chars[i..end]);
                i = end;
            }
            '[' => {
                out.push_str("\\[");
                i += 1;
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
                i += 1;
            }
            '{' if !in_class && !starts_repetition(&chars[i..]) => {
                out.push_str("\\{");
                i += 1;
            }
            '}' if !in_class && !closes_repetition(&chars[..i]) => {
                out.push_str("\\}");
                i += 1;
            }
            '(' if !in_class && chars.get(i + 1) == Some(&'?') => {
                let rest: String = chars[i + 2..].iter().take(2).collect();
                if rest.starts_with('=') || rest.starts_with('!') || rest == "<=" || rest == "<!" {
                    return fail(i, "look-around such as `(?=...)` is not supported by RE2");
                }
                out.push(c);
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// RE2's ASCII meaning of a Perl class, bare inside a `[...]` class.
fn ascii_class(c: char, in_class: bool) -> &'static str {
    match (c, in_class) {
        ('d', false) => "[0-9]",
        ('d', true) => "0-9",
        ('D', _) => "[^0-9]",
        ('w', false) => "[0-9A-Za-z_]",
        ('w', true) => "0-9A-Za-z_",
        ('W', _) => "[^0-9A-Za-z_]",
        ('s', false) => r"[\t\n\x0C\r ]",
        ('s', true) => r"\t\n\x0C\r ",
        // The negated classes nest inside a class, which the crate allows.
        _ => r"[^\t\n\x0C\r ]",
    }
}

/// Whether `rest` (starting at `{`) is `{n}`, `{n,}` or `{n,m}`.
fn starts_repetition(rest: &[char]) -> bool {
    let Some(close) = rest.iter().position(|&c| c == '}') else { return false };
    let body: String = rest[1..close].iter().collect();
    let mut parts = body.splitn(2, ',');
    let min = parts.next().unwrap_or("");
    let max = parts.next();
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(min) && max.is_none_or(|m| m.is_empty() || digits(m))
}

/// Whether the `}` after `before` closes a repetition.
fn closes_repetition(before: &[char]) -> bool {
    let Some(open) = before.iter().rposition(|&c| c == '{') else { return false };
    let escaped = open > 0 && before[open - 1] == '\\';
    !escaped && starts_repetition(&before[open..].iter().copied().chain(['}']).collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_match(pattern: &str, text: &str) -> bool {
        compile(pattern, false).unwrap().is_match(text)
    }

    #[test]
    fn perl_classes_are_ascii_as_in_re2() {
        assert!(is_match(r"^\d+$", "123"));
        assert!(!is_match(r"^\d+$", "١٢٣"));
        assert!(!is_match(r"^\w+$", "é"));
        assert!(is_match(r"^[\d\s]+$", "1 2"));
        assert!(is_match(r"\bcmd\b", "run cmd.exe"));
        assert!(!is_match(r"^\s$", "\u{a0}"));
    }

    #[test]
    fn braces_that_do_not_repeat_are_literal() {
        assert!(is_match(r"a{2}", "aa"));
        assert!(is_match(r"^\{[a-f0-9-]+}$", "{12ab-3}"));
        assert!(is_match(r"{abc}", "x{abc}"));
        assert!(is_match(r"a{,2}", "a{,2}"));
        assert!(is_match(r"a{2,}b", "aaab"));
    }

    #[test]
    fn octal_and_quoted_text() {
        assert!(is_match(r"a\0b", "a\0b"));
        assert!(is_match(r"\101", "A"));
        assert!(is_match(r"\Qa.b*\E+", "a.b*a.b*"));
        assert!(!is_match(r"\Qa.b\E", "axb"));
    }

    #[test]
    fn what_re2_refuses_is_refused_with_its_place() {
        let err = translate(r"(a)\1").unwrap_err();
        assert_eq!(err.offset, Some(3));
        let err = translate(r"x(?=y)").unwrap_err();
        assert_eq!(err.offset, Some(1));
        assert!(translate(r"a\Z").is_err());
        assert!(compile("(", false).is_err());
    }

    #[test]
    fn nocase_and_classes_with_brackets() {
        assert!(compile("ADMIN", true).unwrap().is_match("xadminx"));
        assert!(is_match(r"[]a]", "]"));
        assert!(is_match(r"[[:alpha:]]+", "abc"));
        assert!(is_match(r"a\/b", "a/b"));
    }
}
