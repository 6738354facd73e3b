//! Aligned text tables for listings: every column as wide as its widest cell,
//! so rows line up however long an id or a name is.

/// A table being built.
pub struct Table {
    headers: Vec<String>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers (all left-aligned).
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            right: vec![false; headers.len()],
            rows: vec![],
        }
    }

    /// Right-align these columns (numbers).
    pub fn right(mut self, columns: &[usize]) -> Table {
        for c in columns {
            self.right[*c] = true;
        }
        self
    }

    /// Add a row (missing cells are empty).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, one line per row, the header first.
    pub fn render(&self) -> String {
        let n = self.headers.len();
        let cell = |r: &Vec<String>, i: usize| r.get(i).cloned().unwrap_or_default();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, w) in widths.iter_mut().enumerate() {
                *w = (*w).max(cell(r, i).chars().count());
            }
        }
        let line = |cells: Vec<String>| -> String {
            let mut out = String::new();
            for (i, c) in cells.iter().enumerate() {
                let pad = widths[i].saturating_sub(c.chars().count());
                let last = i + 1 == n;
                if self.right[i] {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(c);
                } else {
                    out.push_str(c);
                    if !last {
                        out.push_str(&" ".repeat(pad));
                    }
                }
                if !last {
                    out.push_str("  ");
                }
            }
            out.trim_end().to_string()
        };
        let mut out = line(self.headers.clone());
        for r in &self.rows {
            out.push('\n');
            out.push_str(&line((0..n).map(|i| cell(r, i)).collect()));
        }
        out
    }

    /// Print the table.
    pub fn print(&self) {
        println!("{}", self.render());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_whatever_the_cell_widths() {
        let mut t = Table::new(&["ID", "N", "NAME"]).right(&[1]);
        t.row(vec!["a".into(), "7".into(), "short".into()]);
        t.row(vec!["0190-long-id".into(), "1234".into(), "x".into()]);
        let text = t.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "ID               N  NAME");
        assert_eq!(lines[1], "a                7  short");
        assert_eq!(lines[2], "0190-long-id  1234  x");
    }
}
