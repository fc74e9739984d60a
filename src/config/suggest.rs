//! "Did you mean ...?": the valid word nearest to a misspelt one.
//!
//! Owns: the distance (optimal string alignment: Levenshtein plus adjacent transpositions, so
//! `fsp` is one edit from `fps`) and how near is near enough to be a typo. Case and `-`/`_` do
//! not count (`rpi_4` is `rpi-4`).

/// The candidate nearest to `word` by edit distance, if near enough to be a typo: one edit for
/// words up to 3 letters, two up to 6, three beyond.
pub fn nearest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let w = folded(word);
    let limit = match w.len() {
        0..=3 => 1,
        4..=6 => 2,
        _ => 3,
    };
    candidates
        .map(|c| (edit_distance(&w, &folded(c)), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn folded(word: &str) -> Vec<char> {
    word.to_lowercase().replace('-', "_").chars().collect()
}

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut d: Vec<Vec<usize>> = (0..=a.len())
        .map(|i| (0..=b.len()).map(|j| if i == 0 { j } else { i }).collect())
        .collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_finds_its_word_and_a_stranger_finds_none() {
        let keys = ["fps", "spec", "bitrate_kbps", "loop"];
        assert_eq!(nearest("fsp", keys.into_iter()), Some("fps"));
        assert_eq!(nearest("SPEC", keys.into_iter()), Some("spec"));
        assert_eq!(
            nearest("bitrate-kbsp", keys.into_iter()),
            Some("bitrate_kbps")
        );
        assert_eq!(nearest("colour", keys.into_iter()), None);
        assert_eq!(
            nearest("rpi4", ["rpi-4", "rpi-5"].into_iter()),
            Some("rpi-4")
        );
    }
}
