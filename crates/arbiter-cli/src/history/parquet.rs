//! Histories in Parquet: the columns of `docs/tuning.md` by name, read column
//! by column (only those the command needs) one row group at a time, and
//! written by `demo generate --out h.parquet`.
//!
//! Column types: `action` a string; `confidence`, `error_cost`,
//! `escalation_cost`, `audit_probability` double or float (costs may also be
//! integers); `correct` and `audit_selected` boolean (or integer 0/1);
//! `timestamp` a Parquet timestamp (milliseconds, microseconds or
//! nanoseconds), an integer of milliseconds, or RFC 3339 text. Optional
//! columns may be null where the CSV format leaves a field empty.

use anyhow::{Context, Result, anyhow, bail};
use arbiter_core::Timestamp;
use arbiter_core::sampling::AuditDraw;
use arbiter_tuning::History;
use arbiter_tuning::history::Record;
use parquet::basic::{LogicalType, TimeUnit, Type as Physical};
use parquet::column::reader::ColumnReader;
use parquet::data_type::ByteArray;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::schema::types::ColumnDescriptor;
use std::path::Path;
use std::sync::Arc;

/// One column of a row group, decoded; `None` where the value is null.
enum Values {
    Text(Vec<Option<ByteArray>>),
    Float(Vec<Option<f64>>),
    Int(Vec<Option<i64>>),
    Bool(Vec<Option<bool>>),
}

impl Values {
    fn float(&self, i: usize) -> Option<f64> {
        match self {
            Values::Float(v) => v[i],
            Values::Int(v) => v[i].map(|x| x as f64),
            _ => None,
        }
    }

    fn flag(&self, i: usize) -> Option<bool> {
        match self {
            Values::Bool(v) => v[i],
            Values::Int(v) => v[i].map(|x| x != 0),
            _ => None,
        }
    }

    fn text(&self, i: usize) -> Option<&[u8]> {
        match self {
            Values::Text(v) => v[i].as_ref().map(ByteArray::data),
            _ => None,
        }
    }
}

/// Spread the non-null `values` over `rows` rows by their definition levels.
fn spread<T: Clone>(values: Vec<T>, defs: &[i16], max_def: i16, rows: usize) -> Vec<Option<T>> {
    if max_def == 0 {
        return values.into_iter().map(Some).collect();
    }
    let mut it = values.into_iter();
    (0..rows).map(|r| if defs[r] == max_def { it.next() } else { None }).collect()
}

fn read_column(reader: ColumnReader, desc: &ColumnDescriptor, rows: usize) -> Result<Values> {
    let max_def = desc.max_def_level();
    let mut defs: Vec<i16> = Vec::with_capacity(rows);
    macro_rules! all {
        ($r:expr, $t:ty) => {{
            let mut r = $r;
            let mut values: Vec<$t> = Vec::with_capacity(rows);
            let mut read = 0;
            while read < rows {
                let d = if max_def > 0 { Some(&mut defs) } else { None };
                let (records, _, _) = r.read_records(rows - read, d, None, &mut values)?;
                if records == 0 {
                    break;
                }
                read += records;
            }
            if read != rows {
                bail!("column `{}` has {read} values in a row group of {rows} rows", desc.name());
            }
            spread(values, &defs, max_def, rows)
        }};
    }
    Ok(match reader {
        ColumnReader::ByteArrayColumnReader(r) => Values::Text(all!(r, ByteArray)),
        ColumnReader::DoubleColumnReader(r) => Values::Float(all!(r, f64)),
        ColumnReader::FloatColumnReader(r) => {
            Values::Float(all!(r, f32).into_iter().map(|v| v.map(f64::from)).collect())
        }
        ColumnReader::Int64ColumnReader(r) => Values::Int(all!(r, i64)),
        ColumnReader::Int32ColumnReader(r) => Values::Int(all!(r, i32).into_iter().map(|v| v.map(i64::from)).collect()),
        ColumnReader::BoolColumnReader(r) => Values::Bool(all!(r, bool)),
        _ => bail!("column `{}` has a type a history does not use ({:?})", desc.name(), desc.physical_type()),
    })
}

/// How to turn the `timestamp` column's integers into milliseconds.
fn millis_per_unit(desc: &ColumnDescriptor) -> Result<Option<(i64, i64)>> {
    Ok(match (desc.physical_type(), desc.logical_type_ref()) {
        (Physical::INT64, Some(LogicalType::Timestamp { unit, .. })) => Some(match unit {
            TimeUnit::MILLIS => (1, 1),
            TimeUnit::MICROS => (1, 1_000),
            TimeUnit::NANOS => (1, 1_000_000),
        }),
        (Physical::INT64 | Physical::INT32, _) => Some((1, 1)),
        (Physical::BYTE_ARRAY, _) => None,
        (t, _) => bail!("column `timestamp` must be a timestamp, milliseconds or RFC 3339 text, not {t:?}"),
    })
}

/// The columns a history's Parquet schema names.
struct Columns {
    time: (usize, Arc<ColumnDescriptor>),
    action: (usize, Arc<ColumnDescriptor>),
    confidence: (usize, Arc<ColumnDescriptor>),
    correct: (usize, Arc<ColumnDescriptor>),
    error_cost: Option<(usize, Arc<ColumnDescriptor>)>,
    escalation_cost: Option<(usize, Arc<ColumnDescriptor>)>,
    probability: Option<(usize, Arc<ColumnDescriptor>)>,
    selected: Option<(usize, Arc<ColumnDescriptor>)>,
    unit: Option<(i64, i64)>,
}

fn open(path: &Path) -> Result<SerializedFileReader<std::fs::File>> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    SerializedFileReader::new(file).with_context(|| format!("{}: not a Parquet file", path.display()))
}

fn columns(path: &Path, reader: &SerializedFileReader<std::fs::File>) -> Result<Columns> {
    let schema = reader.metadata().file_metadata().schema_descr_ptr();
    let find = |name: &str| -> Option<(usize, Arc<ColumnDescriptor>)> {
        (0..schema.num_columns()).map(|i| (i, schema.column(i))).find(|(_, c)| c.path().parts() == [name])
    };
    let need = |name: &str| {
        find(name).ok_or_else(|| {
            anyhow!("{}: missing column `{name}` (need timestamp,action,confidence,correct)", path.display())
        })
    };
    let (probability, selected) = (find("audit_probability"), find("audit_selected"));
    if probability.is_some() != selected.is_some() {
        bail!("{}: audit_probability and audit_selected come together", path.display());
    }
    let time = need("timestamp")?;
    let unit = millis_per_unit(&time.1).with_context(|| path.display().to_string())?;
    Ok(Columns {
        time,
        action: need("action")?,
        confidence: need("confidence")?,
        correct: need("correct")?,
        error_cost: find("error_cost"),
        escalation_cost: find("escalation_cost"),
        probability,
        selected,
        unit,
    })
}

/// Read the Parquet history at `path`, row by row in file order (timestamps only `with_time`).
pub fn read(path: &Path, with_time: bool, each: &mut dyn FnMut(&Record<'_>)) -> Result<()> {
    let reader = open(path)?;
    let cols = columns(path, &reader)?;
    let mut base = 0;
    for g in 0..reader.num_row_groups() {
        base += read_group(path, &reader, &cols, g, base, with_time, each)?;
    }
    Ok(())
}

/// Read the Parquet history at `path` on `threads` threads, row group by row
/// group: `new()` makes one accumulator per thread, `add` counts a row into
/// it, and the accumulators come back in thread order (thread t has row
/// groups t, t + n, ... in file order: the same file gives the same sums).
pub fn read_parallel<A: Send>(
    path: &Path,
    with_time: bool,
    threads: usize,
    new: impl Fn() -> A + Sync,
    add: impl Fn(&mut A, &Record<'_>) + Sync,
) -> Result<Vec<A>> {
    let reader = open(path)?;
    let cols = columns(path, &reader)?;
    let groups = reader.num_row_groups();
    let mut bases = Vec::with_capacity(groups);
    let mut base = 0usize;
    for g in 0..groups {
        bases.push(base);
        base += reader.metadata().row_group(g).num_rows() as usize;
    }
    let threads = threads.clamp(1, groups.max(1));
    let (cols, bases, new, add) = (&cols, &bases, &new, &add);
    let results: Vec<Result<A>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || -> Result<A> {
                    let reader = open(path)?;
                    let mut acc = new();
                    for g in (t..groups).step_by(threads) {
                        read_group(path, &reader, cols, g, bases[g], with_time, &mut |r| add(&mut acc, r))?;
                    }
                    Ok(acc)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a Parquet reading thread panicked")).collect()
    });
    results.into_iter().collect()
}

/// Read row group `g` (whose first row is row `base + 1` of the file); returns its rows.
fn read_group(
    path: &Path,
    reader: &SerializedFileReader<std::fs::File>,
    cols: &Columns,
    g: usize,
    base: usize,
    with_time: bool,
    each: &mut dyn FnMut(&Record<'_>),
) -> Result<usize> {
    let group = reader.get_row_group(g)?;
    let rows = group.metadata().num_rows() as usize;
    let col = |c: &(usize, Arc<ColumnDescriptor>)| -> Result<Values> {
        read_column(group.get_column_reader(c.0)?, &c.1, rows).with_context(|| path.display().to_string())
    };
    let actions = col(&cols.action)?;
    let confidences = col(&cols.confidence)?;
    let labels = col(&cols.correct)?;
    let times = if with_time { Some(col(&cols.time)?) } else { None };
    let errors = cols.error_cost.as_ref().map(col).transpose()?;
    let escalations = cols.escalation_cost.as_ref().map(col).transpose()?;
    let probabilities = cols.probability.as_ref().map(col).transpose()?;
    let selections = cols.selected.as_ref().map(col).transpose()?;
    for i in 0..rows {
        let row = base + i + 1;
        let bad = |field: &str, msg: &str| anyhow!("{}: row {row}: {field}: {msg}", path.display());
        let name = actions.text(i).ok_or_else(|| bad("action", "is missing or not text"))?;
        let name = std::str::from_utf8(name).map_err(|_| bad("action", "is not UTF-8"))?;
        let timestamp = match (&times, cols.unit) {
            (None, _) => None,
            (Some(Values::Int(v)), Some((_, per))) => {
                Some(Timestamp(v[i].ok_or_else(|| bad("timestamp", "is missing"))?.div_euclid(per)))
            }
            (Some(t), _) => {
                let text = t.text(i).ok_or_else(|| bad("timestamp", "is missing"))?;
                let text = std::str::from_utf8(text).map_err(|_| bad("timestamp", "is not UTF-8"))?;
                Some(
                    text.parse::<Timestamp>()
                        .map_err(|e| bad("timestamp", &format!("`{text}` is not RFC 3339 ({e})")))?,
                )
            }
        };
        let audit = match (&probabilities, &selections) {
            (Some(p), Some(s)) => match p.float(i) {
                Some(probability) => Some(AuditDraw {
                    probability,
                    selected: s.flag(i).ok_or_else(|| bad("audit_selected", "is missing"))?,
                }),
                None => None,
            },
            _ => None,
        };
        let record = Record {
            timestamp,
            action: name,
            confidence: confidences.float(i).ok_or_else(|| bad("confidence", "is missing"))?,
            correct: labels.flag(i),
            error_cost: errors.as_ref().and_then(|v| v.float(i)).unwrap_or(f64::NAN),
            escalation_cost: escalations.as_ref().and_then(|v| v.float(i)).unwrap_or(f64::NAN),
            audit,
        };
        record.check(row).map_err(|e| bad(&e.field, &e.message))?;
        each(&record);
    }
    Ok(rows)
}

/// Write `h` as Parquet (the columns `read` reads; snappy-compressed, row groups of a million).
pub fn write(h: &History, path: &Path) -> Result<()> {
    use parquet::data_type::{BoolType, ByteArrayType, DoubleType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    let design = h.has_audit_design();
    let schema = format!(
        "message history {{
            required int64 timestamp (TIMESTAMP(MILLIS,true));
            required binary action (STRING);
            required double confidence;
            {} boolean correct;
            optional double error_cost;
            optional double escalation_cost;
            {}
        }}",
        if h.unlabelled.is_empty() { "required" } else { "optional" },
        if design { "optional double audit_probability;\n            optional boolean audit_selected;" } else { "" }
    );
    let schema = Arc::new(parquet::schema::parser::parse_message_type(&schema)?);
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(parquet::basic::Compression::SNAPPY)
            .set_max_row_group_size(1 << 20)
            .build(),
    );
    let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = SerializedFileWriter::new(file, schema, props)?;
    let rows = h.len() + h.unlabelled.len();
    let group = 1 << 20;
    let mut start = 0;
    while start < rows {
        let end = (start + group).min(rows);
        let idx: Vec<usize> = (start..end).collect();
        let labelled = |i: usize| i < h.len();
        let u = |i: usize| &h.unlabelled[i - h.len()];
        let mut rg = w.next_row_group()?;
        let optional = |v: &[Option<f64>]| -> (Vec<f64>, Vec<i16>) {
            (v.iter().flatten().copied().collect(), v.iter().map(|x| i16::from(x.is_some())).collect())
        };
        let ts: Vec<i64> = idx.iter().map(|&i| if labelled(i) { h.timestamp[i] } else { u(i).timestamp }).collect();
        let names: Vec<ByteArray> = idx
            .iter()
            .map(|&i| {
                let c = if labelled(i) { h.class[i] } else { u(i).class };
                ByteArray::from(h.classes[c as usize].as_str())
            })
            .collect();
        let conf: Vec<f64> = idx.iter().map(|&i| if labelled(i) { h.confidence[i] } else { u(i).confidence }).collect();
        let correct: Vec<Option<bool>> = idx.iter().map(|&i| labelled(i).then(|| h.correct[i])).collect();
        let cost = |v: &[f64], i: usize| if labelled(i) && !v[i].is_nan() { Some(v[i]) } else { None };
        let errors: Vec<Option<f64>> = idx.iter().map(|&i| cost(&h.error_cost, i)).collect();
        let escalations: Vec<Option<f64>> = idx.iter().map(|&i| cost(&h.escalation_cost, i)).collect();
        let draws: Vec<Option<AuditDraw>> =
            idx.iter().map(|&i| if labelled(i) { h.audit(i) } else { Some(u(i).audit) }).collect();
        let mut n = 0;
        while let Some(mut c) = rg.next_column()? {
            match n {
                0 => c.typed::<Int64Type>().write_batch(&ts, None, None)?,
                1 => c.typed::<ByteArrayType>().write_batch(&names, None, None)?,
                2 => c.typed::<DoubleType>().write_batch(&conf, None, None)?,
                3 => {
                    let values: Vec<bool> = correct.iter().flatten().copied().collect();
                    let defs: Vec<i16> = correct.iter().map(|x| i16::from(x.is_some())).collect();
                    let defs = (!h.unlabelled.is_empty()).then_some(defs);
                    c.typed::<BoolType>().write_batch(&values, defs.as_deref(), None)?
                }
                4 | 5 => {
                    let (values, defs) = optional(if n == 4 { &errors } else { &escalations });
                    c.typed::<DoubleType>().write_batch(&values, Some(&defs), None)?
                }
                6 => {
                    let p: Vec<Option<f64>> = draws.iter().map(|d| d.map(|d| d.probability)).collect();
                    let (values, defs) = optional(&p);
                    c.typed::<DoubleType>().write_batch(&values, Some(&defs), None)?
                }
                _ => {
                    let values: Vec<bool> = draws.iter().flatten().map(|d| d.selected).collect();
                    let defs: Vec<i16> = draws.iter().map(|d| i16::from(d.is_some())).collect();
                    c.typed::<BoolType>().write_batch(&values, Some(&defs), None)?
                }
            };
            c.close()?;
            n += 1;
        }
        rg.close()?;
        start = end;
    }
    w.close()?;
    Ok(())
}
