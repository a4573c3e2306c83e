//! "Did you mean": the known name nearest to one that was not found, wherever a name is
//! looked up (keys, bundles, projects, packages, codes, instances), as clap does for flags.

use std::borrow::Borrow;

/// The known name nearest to `name`, if one is near enough to be what was meant: a typo
/// (an edit distance of at most a third of the name, transpositions counting once) or the
/// start of a longer name (`aws-eks` for `aws-eks-cluster`). Ties go to the first in
/// alphabetical order, so the answer never depends on the order `known` comes in.
pub fn nearest<'a, I, S>(name: &str, known: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a S>,
    S: Borrow<str> + ?Sized + 'a,
{
    if name.is_empty() {
        return None;
    }
    let limit = (name.chars().count() / 3).max(1);
    known
        .into_iter()
        .map(Borrow::borrow)
        .filter(|k| *k != name)
        .filter_map(|k| {
            let distance = strsim::osa_distance(name, k);
            let prefix = name.len() >= 3
                && (k.starts_with(name) || name.starts_with(k))
                && k.len().min(name.len()) >= 3;
            (distance <= limit || prefix).then_some((distance, k))
        })
        .min()
        .map(|(_, k)| k)
}

/// ` (did you mean `x`?)` after a message, or nothing.
pub fn did_you_mean<'a, I, S>(name: &str, known: I) -> String
where
    I: IntoIterator<Item = &'a S>,
    S: Borrow<str> + ?Sized + 'a,
{
    nearest(name, known).map_or_else(String::new, |k| format!(" (did you mean `{k}`?)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_and_prefixes_find_what_was_meant_and_nothing_else_does() {
        let keys = ["name", "owners", "packages", "shares", "attributes"];
        assert_eq!(nearest("pacakges", keys), Some("packages"));
        assert_eq!(nearest("owner", keys), Some("owners"));
        assert_eq!(nearest("zzz", keys), None);
        assert_eq!(
            nearest("packages", keys),
            None,
            "an exact name is no suggestion"
        );
        assert_eq!(
            nearest("aws-eks", ["aws-vpc", "aws-eks-cluster"]),
            Some("aws-eks-cluster")
        );
        assert_eq!(
            nearest(
                "sharing.notgranted",
                ["sharing.not-granted", "sharing.not-granted-attributes"]
            ),
            Some("sharing.not-granted")
        );
        assert_eq!(
            nearest(
                "ecomm-staging-ap",
                ["ecomm-staging-app", "ecomm-staging-db"]
            ),
            Some("ecomm-staging-app")
        );
        assert_eq!(did_you_mean("x", ["name"]), "");
        assert_eq!(did_you_mean("nme", ["name"]), " (did you mean `name`?)");
    }
}
