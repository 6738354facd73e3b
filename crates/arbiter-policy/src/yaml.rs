//! A YAML tree that remembers where every node came from, so that policy errors
//! can name the line and column. Built from saphyr's event stream.

use saphyr_parser::{Event, Parser, ScalarStyle};

/// A 1-based line and column in the policy file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub col: usize,
}

/// A YAML node with its position.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A scalar: its text and quoting style.
    Scalar {
        /// The scalar's text after YAML unescaping.
        text: String,
        /// Quoting style; plain scalars may be null, numbers or booleans.
        style: ScalarStyle,
        /// Where it starts.
        pos: Pos,
    },
    /// A sequence.
    Seq {
        /// The items.
        items: Vec<Node>,
        /// Where it starts.
        pos: Pos,
    },
    /// A mapping with scalar keys, in document order.
    Map {
        /// Key text, key position, value.
        entries: Vec<(String, Pos, Node)>,
        /// Where it starts.
        pos: Pos,
    },
}

impl Node {
    /// Where the node starts.
    pub fn pos(&self) -> Pos {
        match self {
            Node::Scalar { pos, .. } | Node::Seq { pos, .. } | Node::Map { pos, .. } => *pos,
        }
    }

    /// True for a plain `null`, `~` or empty scalar.
    pub fn is_null(&self) -> bool {
        matches!(self, Node::Scalar { text, style: ScalarStyle::Plain, .. } if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }
}

/// A YAML syntax error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// Line and column of the offending token.
    pub pos: Pos,
    /// What is wrong there.
    pub message: String,
}

enum Frame {
    Seq(Vec<Node>, Pos),
    Map(Vec<(String, Pos, Node)>, Option<(String, Pos)>, Pos),
}

/// Parse one YAML document into a positioned tree. Aliases are refused so that
/// a policy reads the same as it evaluates (and cannot explode in size).
pub fn parse(src: &str) -> Result<Node, YamlError> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    for ev in Parser::new_from_str(src) {
        let (ev, span) = ev.map_err(|e| YamlError {
            pos: Pos { line: e.marker().line(), col: e.marker().col() + 1 },
            message: e.info().to_string(),
        })?;
        let pos = Pos { line: span.start.line(), col: span.start.col() + 1 };
        let done = match ev {
            Event::StreamStart | Event::StreamEnd | Event::Nothing => None,
            Event::DocumentStart(_) => {
                if root.is_some() {
                    return Err(YamlError {
                        pos,
                        message: "a policy file holds one YAML document; found a second".into(),
                    });
                }
                None
            }
            Event::DocumentEnd => None,
            Event::Alias(_) => {
                return Err(YamlError { pos, message: "YAML aliases (`*name`) are not supported in policies".into() });
            }
            Event::Scalar(text, style, _, _) => Some(Node::Scalar { text: text.into_owned(), style, pos }),
            Event::SequenceStart(..) => {
                stack.push(Frame::Seq(Vec::new(), pos));
                None
            }
            Event::MappingStart(..) => {
                stack.push(Frame::Map(Vec::new(), None, pos));
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(items, pos)) => Some(Node::Seq { items, pos }),
                _ => {
                    return Err(YamlError { pos, message: "unbalanced sequence".into() });
                }
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(entries, _, pos)) => Some(Node::Map { entries, pos }),
                _ => {
                    return Err(YamlError { pos, message: "unbalanced mapping".into() });
                }
            },
        };
        let Some(node) = done else { continue };
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq(items, _)) => items.push(node),
            Some(Frame::Map(entries, pending, _)) => match pending.take() {
                Some((k, kpos)) => {
                    if entries.iter().any(|(e, _, _)| *e == k) {
                        return Err(YamlError { pos: kpos, message: format!("duplicate key `{k}`") });
                    }
                    entries.push((k, kpos, node));
                }
                None => match node {
                    Node::Scalar { text, pos, .. } => *pending = Some((text, pos)),
                    other => {
                        return Err(YamlError { pos: other.pos(), message: "mapping keys must be plain text".into() });
                    }
                },
            },
        }
    }
    root.ok_or(YamlError { pos: Pos { line: 1, col: 1 }, message: "the policy file is empty".into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_shapes() {
        let n = parse("a: 1\nb:\n  - x\n  - {c: d}\n").unwrap();
        let Node::Map { entries, .. } = n else { panic!() };
        assert_eq!(entries[1].1, Pos { line: 2, col: 1 });
        let Node::Seq { items, .. } = &entries[1].2 else { panic!() };
        assert_eq!(items[0].pos(), Pos { line: 3, col: 5 });
    }

    #[test]
    fn refuses_duplicates_aliases_and_garbage() {
        assert!(parse("a: 1\na: 2\n").unwrap_err().message.contains("duplicate"));
        assert!(parse("a: &x 1\nb: *x\n").unwrap_err().message.contains("alias"));
        assert_eq!(parse("a: [1, 2\n").unwrap_err().pos.line, 2);
        assert!(parse("").is_err());
    }
}
