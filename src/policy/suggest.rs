//! Nearest valid names for error messages: a policy file or rule set that misspells a group,
//! protocol, service, transport, target or chain is refused with what it most likely meant
//! ("did you mean `smtp`?"), or with the valid names when nothing is near.

/// Edit distance with adjacent transpositions (optimal string alignment), ignoring case.
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    // Row i lives in rows[i % 3]: the current one, one back, two back (for transpositions).
    let mut rows = vec![vec![0usize; b.len() + 1]; 3];
    for (j, c) in rows[0].iter_mut().enumerate() {
        *c = j;
    }
    for i in 1..=a.len() {
        let (cur, prev, prev2) = (i % 3, (i + 2) % 3, (i + 1) % 3);
        rows[cur][0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[prev][j] + 1)
                .min(rows[cur][j - 1] + 1)
                .min(rows[prev][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[prev2][j - 2] + 1);
            }
            rows[cur][j] = d;
        }
    }
    rows[a.len() % 3][b.len()]
}

/// `name`'s letters appear in `full` in order, starting with the same letter (`mbx` for
/// `mailbox`): an abbreviation.
fn abbreviates(name: &str, full: &str) -> bool {
    let (name, full) = (name.to_lowercase(), full.to_lowercase());
    let mut rest = full.chars();
    name.len() >= 2
        && name.chars().next() == full.chars().next()
        && name.chars().all(|c| rest.any(|f| f == c))
}

/// The candidate `name` most likely meant: the nearest by edit distance when it is within a
/// third of the name's length (at least one edit), else an abbreviation's expansion.
pub fn nearest<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .iter()
        .copied()
        .map(|c| (distance(name, c), c))
        .filter(|&(d, _)| d <= limit)
        .min()
        .map(|(_, c)| c)
        .or_else(|| candidates.iter().copied().find(|c| abbreviates(name, c)))
}

/// `; did you mean `X`?` when a candidate is near, else nothing (for messages that already
/// list the valid names).
pub fn did_you_mean(name: &str, candidates: &[&str]) -> String {
    nearest(name, candidates).map_or(String::new(), |n| format!("; did you mean `{n}`?"))
}

/// The end of an error message about `name`: `; did you mean `X`?`, or the valid names
/// (the first 12) when none is near.
pub fn hint(name: &str, candidates: &[&str]) -> String {
    match nearest(name, candidates) {
        Some(_) => did_you_mean(name, candidates),
        None if candidates.is_empty() => String::new(),
        None => {
            let mut shown: Vec<String> = candidates
                .iter()
                .take(12)
                .map(|c| format!("`{c}`"))
                .collect();
            if candidates.len() > 12 {
                shown.push(format!("and {} more", candidates.len() - 12));
            }
            format!("; valid: {}", shown.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("smpt", "smtp"), 1);
        assert_eq!(distance("ACCPET", "ACCEPT"), 1);
        assert_eq!(distance("accept", "ACCEPT"), 0);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("tcpp", "tcp"), 1);
    }

    #[test]
    fn typos_find_their_name_and_strangers_find_none() {
        let protocols = ["smtp", "imap", "pop3", "http", "sip", "ldap"];
        assert_eq!(nearest("smpt", &protocols), Some("smtp"));
        assert_eq!(nearest("htp", &protocols), Some("http"));
        assert_eq!(nearest("mbx", &["edge", "mailbox", "dc"]), Some("mailbox"));
        assert_eq!(nearest("NOSUCHCHAIN", &["FORWARD", "EXCHANGE"]), None);
        assert_eq!(
            hint("NOSUCHCHAIN", &["FORWARD", "EXCHANGE"]),
            "; valid: `FORWARD`, `EXCHANGE`"
        );
        assert_eq!(
            hint("ACCPET", &["ACCEPT", "DROP"]),
            "; did you mean `ACCEPT`?"
        );
        assert_eq!(hint("x", &[]), "");
    }
}
