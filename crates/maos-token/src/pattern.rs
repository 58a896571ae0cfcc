//! Matching of action patterns and resource scopes, and the *containment* test
//! that derivation uses. Containment is conservative: when it cannot prove that a
//! child pattern is inside the parent's, it says no (fail closed).

/// Matches `text` against a glob where `*` matches any run of characters except
/// `sep` (when given) and `**` matches anything, separators included.
pub(crate) fn glob_match(pattern: &str, text: &str, sep: Option<u8>) -> bool {
    glob_bytes(pattern.as_bytes(), text.as_bytes(), sep)
}

fn glob_bytes(p: &[u8], t: &[u8], sep: Option<u8>) -> bool {
    // Iterative matcher with one backtrack point per star kind; bounded by
    // O(len(p) * len(t)), and both lengths are capped by the token limits.
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize, bool)> = None; // (pattern idx after star, text idx, double)
    while ti < t.len() {
        let pc = p.get(pi).copied();
        let tc = t.get(ti).copied();
        if pc == Some(b'*') {
            let double = p.get(pi + 1) == Some(&b'*');
            pi += if double { 2 } else { 1 };
            star = Some((pi, ti, double));
            continue;
        }
        if pc.is_some() && pc == tc {
            pi += 1;
            ti += 1;
            continue;
        }
        match star {
            Some((sp, st, double)) => {
                // Let the star swallow one more character, unless a single star
                // would swallow a separator.
                let swallowed = t.get(st).copied();
                if !double && sep.is_some() && swallowed == sep {
                    return false;
                }
                star = Some((sp, st + 1, double));
                pi = sp;
                ti = st + 1;
            }
            None => return false,
        }
    }
    p.get(pi..).is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

/// The literal part of a pattern before its first `*`.
pub(crate) fn literal_prefix(pattern: &str) -> &str {
    pattern.split('*').next().unwrap_or_default()
}

pub(crate) fn has_wildcard(pattern: &str) -> bool {
    pattern.contains('*')
}

/// Whether every string matched by `child` is also matched by `parent`.
/// Proven cases: equal patterns; a literal child that the parent matches; a
/// parent of the form `PREFIX*` / `PREFIX**` (a single trailing star run, no
/// other wildcard) and a child whose literal prefix extends `PREFIX` — with a
/// single star, the child may not cross a separator the parent could not.
pub(crate) fn glob_within(child: &str, parent: &str, sep: Option<u8>) -> bool {
    if child == parent {
        return true;
    }
    if !has_wildcard(child) {
        return glob_match(parent, child, sep);
    }
    let prefix = literal_prefix(parent);
    let tail = parent.get(prefix.len()..).unwrap_or_default();
    let parent_is_prefix_glob = tail == "**" || tail == "*";
    if !parent_is_prefix_glob {
        return false;
    }
    if !child.starts_with(prefix) {
        return false;
    }
    if tail == "**" || sep.is_none() {
        return true;
    }
    // Parent `PREFIX*` with a separator: the child's remainder must not contain a
    // separator or a `**`, or it could match deeper than the parent.
    let rest = child.get(prefix.len()..).unwrap_or_default();
    !rest.contains("**") && !sep.is_some_and(|s| rest.as_bytes().contains(&s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_documented() {
        let s = Some(b'/');
        assert!(glob_match("/workspace/**", "/workspace/a/b.txt", s));
        assert!(glob_match("/workspace/*", "/workspace/a.txt", s));
        assert!(!glob_match("/workspace/*", "/workspace/a/b.txt", s));
        assert!(!glob_match("/workspace/**", "/shared/a", s));
        assert!(glob_match("*.txt", "notes.txt", None));
        assert!(glob_match("a*b*c", "axxbyyc", None));
        assert!(!glob_match("a*b*c", "axxbyy", None));
        assert!(glob_match("**", "", s));
        assert!(glob_match("exact", "exact", None));
        assert!(!glob_match("exact", "exactly", None));
    }

    #[test]
    fn containment_is_conservative() {
        let s = Some(b'/');
        assert!(glob_within("/workspace/reports/**", "/workspace/**", s));
        assert!(glob_within("/workspace/a.txt", "/workspace/*", s));
        assert!(!glob_within("/workspace/a/**", "/workspace/*", s));
        assert!(!glob_within("/**", "/workspace/**", s));
        assert!(!glob_within("/work*", "/workspace/**", s));
        assert!(glob_within("/workspace/x*", "/workspace/*", s));
        assert!(!glob_within("/a/*/b", "/a/*/c", s));
        assert!(glob_within("/a/*/b", "/a/*/b", s));
    }
}
