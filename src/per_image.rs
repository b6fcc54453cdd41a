//! Data sets side by side by the likelihood a model gives each image: the per-image bits/dim
//! of `pixelcnn eval --per-image` files, each set's summary, and the AUROC of telling two sets
//! apart by it. This is how Nalisnick et al. 2019 (arXiv 1810.09136) showed that a likelihood
//! model can give images unlike its training data a *higher* likelihood than its own test set,
//! and how Ren et al. 2019 (arXiv 1906.02845) score out-of-distribution detection.

/// The header line of a per-image file, as `pixelcnn eval --per-image` writes it.
pub const PER_IMAGE_HEADER: &str = "image,label,nats,bits_per_dim";

/// Why a per-image file could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PerImageError {
    #[error("not a file of per-image likelihoods (its first line is not `{PER_IMAGE_HEADER}`)")]
    Header,
    #[error("line {line}: expected image,label,nats,bits_per_dim with a finite bits_per_dim")]
    Line { line: usize },
    #[error("no images")]
    Empty,
}

/// The bits/dim column of a per-image file's text: its header, then at least one line of four
/// fields whose last is a finite number.
pub fn parse_per_image(text: &[u8]) -> Result<Vec<f64>, PerImageError> {
    let text = String::from_utf8_lossy(text);
    let mut lines = text.lines();
    if lines.next() != Some(PER_IMAGE_HEADER) {
        return Err(PerImageError::Header);
    }
    let values = lines
        .enumerate()
        .map(|(i, line)| {
            let fields: Vec<&str> = line.split(',').collect();
            match fields[..] {
                [_, _, _, bits] => bits.parse::<f64>().ok().filter(|v| v.is_finite()),
                _ => None,
            }
            .ok_or(PerImageError::Line { line: i + 2 })
        })
        .collect::<Result<Vec<f64>, _>>()?;
    if values.is_empty() {
        return Err(PerImageError::Empty);
    }
    Ok(values)
}

/// One set's per-image bits/dim, with the name the legend gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    pub label: String,
    pub bits_per_dim: Vec<f64>,
}

/// Count, mean and median of a set's per-image bits/dim.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub images: usize,
    pub mean: f64,
    pub median: f64,
}

impl Scores {
    /// The set's count, mean and median; `None` for an empty set.
    pub fn summary(&self) -> Option<Summary> {
        let values = &self.bits_per_dim;
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let middle = sorted.len() / 2;
        let median = match sorted.len() % 2 {
            1 => sorted[middle],
            _ => (sorted[middle - 1] + sorted[middle]) / 2.0,
        };
        Some(Summary {
            images: values.len(),
            mean: values.iter().sum::<f64>() / values.len() as f64,
            median,
        })
    }
}

/// The area under the ROC curve of flagging an image as not `inside` when its bits/dim is
/// high: the probability that an image of `outside` scores more bits/dim than one of `inside`,
/// ties counting half (the Mann–Whitney statistic). 1 separates the sets perfectly; 0.5 is
/// chance; below 0.5 the model likes `outside` better than its own data. `None` if either set
/// is empty.
pub fn auroc(inside: &[f64], outside: &[f64]) -> Option<f64> {
    if inside.is_empty() || outside.is_empty() {
        return None;
    }
    let mut sorted = inside.to_vec();
    sorted.sort_by(f64::total_cmp);
    let wins: f64 = outside
        .iter()
        .map(|&value| {
            let below = sorted.partition_point(|&v| v < value);
            let tied = sorted[below..].partition_point(|&v| v <= value);
            below as f64 + tied as f64 / 2.0
        })
        .sum();
    Some(wins / (inside.len() as f64 * outside.len() as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_counts_pairs_in_which_the_outside_image_scores_higher() {
        // Outside 3 beats inside 1 and 2; outside 2 beats 1 and ties 2: (2 + 1.5) / 4.
        assert_eq!(auroc(&[1.0, 2.0], &[3.0, 2.0]), Some(3.5 / 4.0));
        assert_eq!(auroc(&[1.0, 2.0], &[3.0, 4.0]), Some(1.0));
        assert_eq!(auroc(&[3.0, 4.0], &[1.0, 2.0]), Some(0.0));
        assert_eq!(auroc(&[1.0, 1.0], &[1.0]), Some(0.5));
        assert_eq!(auroc(&[], &[1.0]), None);
    }

    #[test]
    fn auroc_agrees_with_counting_every_pair() {
        let inside: Vec<f64> = (0..200).map(|i| ((i * 37) % 101) as f64 / 10.0).collect();
        let outside: Vec<f64> = (0..150).map(|i| ((i * 53) % 89) as f64 / 9.0).collect();
        let mut wins = 0.0;
        for &o in &outside {
            for &i in &inside {
                wins += if o > i {
                    1.0
                } else if o == i {
                    0.5
                } else {
                    0.0
                };
            }
        }
        let expected = wins / (inside.len() * outside.len()) as f64;
        assert!((auroc(&inside, &outside).unwrap() - expected).abs() < 1e-12);
    }

    #[test]
    fn the_summary_gives_the_mean_and_the_median() {
        let scores = |values: &[f64]| Scores {
            label: "set".into(),
            bits_per_dim: values.to_vec(),
        };
        let odd = scores(&[3.0, 1.0, 8.0]).summary().unwrap();
        assert_eq!((odd.images, odd.mean, odd.median), (3, 4.0, 3.0));
        assert_eq!(scores(&[4.0, 1.0, 2.0, 3.0]).summary().unwrap().median, 2.5);
        assert_eq!(scores(&[]).summary(), None);
    }
}
