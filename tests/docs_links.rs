//! The documentation's links and paths exist, and README.md stays a newcomer's first read.
//!
//! In README.md, CONTRIBUTING.md and docs/*.md, outside fenced code blocks: every relative
//! Markdown link target (`[text](path)`, `![alt](path)`; not http(s):, mailto: or a pure
//! `#anchor`; any `#fragment` dropped) must exist relative to the file that names it, and every
//! repository path in inline code (a span without spaces that starts with `src/`, `tests/`, …
//! or is README.md, CONTRIBUTING.md or Cargo.toml; a trailing `:LINE` or `:LINE:COL` dropped;
//! spans with placeholders such as RUN_DIR skipped) must exist relative to the repository root.
//! Every missing path is listed, so one run shows them all.

use std::fs;
use std::path::{Path, PathBuf};

/// The most lines and bytes README.md may have.
const README_MAX_LINES: usize = 250;
const README_MAX_BYTES: usize = 20_000;

/// Inline code that starts with one of these names a repository path.
const PATH_PREFIXES: [&str; 12] = [
    "src/",
    "cli/",
    "training/",
    "tests/",
    "benches/",
    "docs/",
    "models/",
    "examples/",
    "fuzz/",
    "data/",
    ".ci/",
    "scripts/",
];
/// Inline code that is exactly one of these names a repository path.
const ROOT_FILES: [&str; 3] = ["README.md", "CONTRIBUTING.md", "Cargo.toml"];
/// Inline code containing one of these is a pattern or a placeholder, not a path.
const PLACEHOLDERS: [&str; 8] = ["*", "…", "<", "{", "RUN_DIR", "NAME", "FILE", "DIR"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md, CONTRIBUTING.md and every docs/*.md, in a fixed order.
fn documentation_files() -> Vec<PathBuf> {
    let root = root();
    let mut files = vec![root.join("README.md"), root.join("CONTRIBUTING.md")];
    let mut pages: Vec<PathBuf> = fs::read_dir(root.join("docs"))
        .expect("docs/ can be read")
        .map(|entry| entry.expect("docs/ entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    pages.sort();
    files.extend(pages);
    files
}

/// The text's paragraphs outside fenced code blocks (a line starting, after indentation, with
/// three backticks or tildes opens or closes one), each as one string of its lines.
fn paragraphs(text: &str) -> Vec<String> {
    let mut paragraphs = Vec::new();
    let mut current = String::new();
    let mut in_fence = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
            if !current.is_empty() {
                paragraphs.push(std::mem::take(&mut current));
            }
            continue;
        }
        if in_fence {
            continue;
        }
        if trimmed.is_empty() {
            if !current.is_empty() {
                paragraphs.push(std::mem::take(&mut current));
            }
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    if !current.is_empty() {
        paragraphs.push(current);
    }
    paragraphs
}

/// Splits a paragraph into its inline code spans and the prose around them (each span replaced
/// by a space). A run of n backticks opens a span that the next run of exactly n closes; an
/// unclosed run is prose.
fn split_code(paragraph: &str) -> (Vec<String>, String) {
    let bytes = paragraph.as_bytes();
    let run_at = |from: usize| bytes[from..].iter().take_while(|&&b| b == b'`').count();
    let mut spans = Vec::new();
    let mut prose = String::new();
    let mut copied = 0; // prose before this index is already in `prose`
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'`' {
            i += 1;
            continue;
        }
        let open = run_at(i);
        let mut j = i + open;
        let mut close = None;
        while j < bytes.len() {
            if bytes[j] == b'`' {
                let run = run_at(j);
                if run == open {
                    close = Some(j);
                    break;
                }
                j += run;
            } else {
                j += 1;
            }
        }
        match close {
            Some(j) => {
                prose.push_str(&paragraph[copied..i]);
                prose.push(' ');
                spans.push(paragraph[i + open..j].trim().to_string());
                i = j + open;
                copied = i;
            }
            None => i += open,
        }
    }
    prose.push_str(&paragraph[copied..]);
    (spans, prose)
}

/// The targets of the Markdown links and images in prose: what follows each `](` up to `)`,
/// less a title after a space and any angle brackets.
fn link_targets(prose: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut rest = prose;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let end = after.find(')').unwrap_or(after.len());
        let target = after[..end].split_whitespace().next().unwrap_or("");
        let target = target.trim_start_matches('<').trim_end_matches('>');
        targets.push(target.to_string());
        rest = &after[end..];
    }
    targets
}

/// A link target's file path, or `None` for an absolute URL, a mail address or a pure anchor.
fn relative_link(target: &str) -> Option<&str> {
    let external = ["http://", "https://", "mailto:"];
    if target.is_empty()
        || target.starts_with('#')
        || external.iter().any(|e| target.starts_with(e))
    {
        return None;
    }
    let path = target.split('#').next().unwrap_or("");
    (!path.is_empty()).then_some(path)
}

/// `path:LINE` or `path:LINE:COL` without the numbers.
fn strip_line_number(span: &str) -> &str {
    let mut path = span;
    for _ in 0..2 {
        match path.rsplit_once(':') {
            Some((head, tail)) if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) => {
                path = head;
            }
            _ => break,
        }
    }
    path
}

/// The repository path an inline code span names, or `None` if it names none.
fn repository_path(span: &str) -> Option<&str> {
    if span.is_empty() || span.chars().any(char::is_whitespace) {
        return None;
    }
    if PLACEHOLDERS.iter().any(|p| span.contains(p)) {
        return None;
    }
    let path = strip_line_number(span);
    let named = PATH_PREFIXES.iter().any(|p| path.starts_with(p)) || ROOT_FILES.contains(&path);
    named.then_some(path)
}

/// `file: path` for every link target and repository path of `file` that does not exist, and
/// the number of paths checked.
fn missing_paths(file: &Path) -> (Vec<String>, usize) {
    let root = root();
    let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let name = file
        .strip_prefix(&root)
        .unwrap_or(file)
        .display()
        .to_string();
    let folder = file.parent().expect("a file has a folder");
    let mut missing = Vec::new();
    let mut checked = 0;
    for paragraph in paragraphs(&text) {
        let (spans, prose) = split_code(&paragraph);
        for target in link_targets(&prose) {
            if let Some(path) = relative_link(&target) {
                checked += 1;
                if !folder.join(path).exists() {
                    missing.push(format!("{name}: {path} (link)"));
                }
            }
        }
        for span in &spans {
            if let Some(path) = repository_path(span) {
                checked += 1;
                if !root.join(path).exists() {
                    missing.push(format!("{name}: {path} (inline code)"));
                }
            }
        }
    }
    (missing, checked)
}

#[test]
fn every_documented_link_and_path_exists() {
    let mut missing = Vec::new();
    let mut checked = 0;
    for file in documentation_files() {
        let (file_missing, file_checked) = missing_paths(&file);
        missing.extend(file_missing);
        checked += file_checked;
    }
    assert!(
        missing.is_empty(),
        "{} of {checked} documented paths do not exist:\n{}",
        missing.len(),
        missing.join("\n")
    );
    // A scanner that found nothing would pass for the wrong reason.
    assert!(checked > 50, "only {checked} documented paths were found");
}

#[test]
fn readme_is_a_first_read() {
    let text = fs::read_to_string(root().join("README.md")).expect("README.md can be read");
    let lines = text.lines().count();
    let bytes = text.len();
    assert!(
        lines <= README_MAX_LINES && bytes <= README_MAX_BYTES,
        "README.md has {lines} lines and {bytes} bytes; at most {README_MAX_LINES} lines and \
         {README_MAX_BYTES} bytes: move details to docs/"
    );
}

#[test]
fn the_scanner_reads_markdown_as_documented() {
    let text = "See [a](docs/a.md#x), ![b](gallery/b.png \"t\") and [c](https://x.org).\n\
                `src/lib.rs:12:3` and `RUN_DIR/x` and ``code with ` inside``\n\
                \n\
                ```sh\n\
                [d](not/checked.md) `src/not_checked.rs`\n\
                ```\n\
                `[e](in/code.md)` [f](#anchor)\n";
    let mut targets = Vec::new();
    let mut spans = Vec::new();
    for paragraph in paragraphs(text) {
        let (code, prose) = split_code(&paragraph);
        targets.extend(link_targets(&prose));
        spans.extend(code);
    }
    assert_eq!(
        targets,
        ["docs/a.md#x", "gallery/b.png", "https://x.org", "#anchor"]
    );
    let links: Vec<&str> = targets
        .iter()
        .filter_map(|t| relative_link(t.as_str()))
        .collect();
    assert_eq!(links, ["docs/a.md", "gallery/b.png"]);
    assert_eq!(
        spans,
        [
            "src/lib.rs:12:3",
            "RUN_DIR/x",
            "code with ` inside",
            "[e](in/code.md)"
        ]
    );
    let paths: Vec<&str> = spans
        .iter()
        .filter_map(|s| repository_path(s.as_str()))
        .collect();
    assert_eq!(paths, ["src/lib.rs"]);
    assert_eq!(repository_path("Cargo.toml:3"), Some("Cargo.toml"));
    assert_eq!(repository_path("fuzz/seeds/<target>/"), None);
}
