//! The fixtures in guide/ are the guide's YAML blocks, verbatim. The project must stand alone,
//! so the check runs only where the guide itself is beside the repository.

use std::path::Path;

/// The YAML fenced blocks of a markdown text, in order.
fn yaml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.trim_end() == "```yaml" => current = Some(String::new()),
            Some(block) if line.trim_end() == "```" => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

fn fixtures() -> Vec<String> {
    let mut paths: Vec<_> = std::fs::read_dir("guide")
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

#[test]
fn guide_fixtures_equal_the_guides_yaml_blocks() {
    let guide = Path::new("../../shared/optimization-guide.md");
    if !guide.exists() {
        // Outside the workplace the guide is not beside the repository; the fixtures stand alone.
        eprintln!("{} not found: fixture check skipped", guide.display());
        return;
    }
    let blocks = yaml_blocks(&std::fs::read_to_string(guide).unwrap());
    assert_eq!(blocks.len(), 15, "the guide has 15 YAML blocks");
    assert_eq!(fixtures(), blocks);
}

#[test]
fn yaml_blocks_are_found_between_fences() {
    let markdown = "text\n```yaml\na: 1\n```\n```bash\nx\n```\n```yaml\nb: 2\nc: 3\n```\n";
    assert_eq!(yaml_blocks(markdown), ["a: 1\n", "b: 2\nc: 3\n"]);
}
