//! Per-stream buffers: record JSON decoded straight into typed Arrow column buffers.
//!
//! Owns: turning one record's raw JSON into one row (checking every value, at any depth,
//! against its column's type, and naming the field when it does not fit) and handing
//! out the buffered rows as an Arrow `RecordBatch`, with the Singer metadata columns
//! (`metadata`) after the stream's own when they are on. Fields an object level does
//! not declare go to its `_sdc_extra` column where the schema keeps them (see
//! `schema`), and on a line `dialect` rewrote, NaN and the infinities go into float
//! columns only. A column stored as text (`ColumnType::AsText`) is checked as its own
//! type and handed out as the text the CSV encoder writes for it (the renderings of
//! `encode::text`, shared, not an encoder).
//! Must not touch: encoding, keys or the store. A rejected record leaves no trace: every
//! buffer is cut back to the previous row count, so skipping it is always safe.
//!
//! The buffers are plain vectors rather than arrow's builders because they can be cut
//! back, and because values are written into them from serde visitors with no
//! intermediate JSON tree.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Weak};

use arrow::array::{
    ArrayData, ArrayRef, BooleanBufferBuilder, ListArray, StringArray, StringBuilder, StructArray,
    make_array,
};
use arrow::buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{ArrowNativeType, DataType, FieldRef, Fields, SchemaRef, TimeUnit, i256};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::json;
use serde_json::value::RawValue;

use crate::dialect::{Marks, non_finite_name};
use crate::encode::text;
use crate::metadata::{self, Envelope, MetaColumns};
use crate::protocol::{BorrowedStr, RecordSink};
use crate::scan::{self, Scanner, same};
use crate::schema::{Column, ColumnType, StreamSchema};
use crate::suggest;
use crate::values::{self, Shown, ShownNumber};

/// What to do with a number a float64 column cannot hold exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InexactNumbers {
    /// Refuse the record (the default: nothing is rounded silently).
    #[default]
    Fail,
    /// Store the nearest float64 and count it.
    Warn,
}

/// How strictly values are checked, from the settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecodeOptions {
    /// `validate_records: false`: take strings that hold numbers or booleans into such
    /// columns, and any value into a string column as its JSON text.
    pub lenient: bool,
    pub inexact_numbers: InexactNumbers,
    /// Refuse records with fields the schema does not have (else: warn once, ignore).
    pub refuse_unknown_fields: bool,
    /// `lone_surrogates: replace`: store U+FFFD for a lone surrogate escape (else the
    /// record is invalid).
    pub replace_surrogates: bool,
}

/// The rows of one stream not yet written, with what is needed to decide when to flush.
///
/// A batch that holds no rows is parked (`park`; a new batch starts parked): its column
/// buffers are dropped and only the schema, the options and the fields it skips stay,
/// so a stream that is done, idle or not started costs a few hundred bytes, not the
/// buffers it last held. The next record makes the buffers again, from the schema's
/// `Template`.
pub struct Batch {
    schema: Arc<StreamSchema>,
    template: Arc<Template>,
    /// The column buffers; None while parked.
    columns: Option<Box<Columns>>,
    /// While parked: the fields not in the schema the buffers skipped (see `Skipped`).
    skipped: Skipped,
    keys: Vec<usize>,
    options: DecodeOptions,
    rows: usize,
    bytes: usize,
    first_line: Option<u64>,
    newly_ignored: Vec<String>,
    /// Why the record being decoded was refused.
    failure: Option<String>,
}

/// A batch's column buffers.
struct Columns {
    root: StructColumn,
    /// The metadata columns' values that do not come from the record, when they are on.
    meta: Option<MetaColumns>,
}

impl Columns {
    fn new(template: &Template, schema: &StreamSchema, skipped: &Skipped) -> Box<Columns> {
        let mut root = template.root.empty();
        // Fields whose properties metadata columns replaced are passed over, never kept.
        root.ignored.extend(schema.replaced.iter().cloned());
        skipped.apply(&mut root);
        let meta = schema.metadata_unit().map(MetaColumns::new);
        Box::new(Columns { root, meta })
    }
}

/// The buffers of a batch, made again first if it is parked. (A function of the
/// fields, so the caller may borrow the batch's other fields beside it.)
fn unparked<'a>(
    columns: &'a mut Option<Box<Columns>>,
    template: &Template,
    schema: &StreamSchema,
    skipped: &mut Skipped,
) -> &'a mut Columns {
    columns.get_or_insert_with(|| Columns::new(template, schema, &std::mem::take(skipped)))
}

/// The empty buffers that every buffer of one schema's columns is made from, holding
/// what those buffers share (each struct level's `Layout`, each column's `Named`): made
/// once per schema and shared by a stream's buffer, its twins and the streams of the
/// same schema (`Templates`), so a buffer made again costs its own vectors, not the
/// names, paths, types and Arrow fields of its columns.
#[derive(Debug)]
pub struct Template {
    root: StructColumn,
    /// The columns and Arrow schema it was made from, held so that the addresses
    /// `Templates` finds it by are not reused while it lives.
    _made_from: (Arc<Vec<Column>>, SchemaRef),
}

impl Template {
    fn new(schema: &StreamSchema) -> Template {
        Template {
            root: StructColumn::new(&schema.record_columns(), ""),
            _made_from: (schema.columns.clone(), schema.arrow.clone()),
        }
    }
}

/// The templates of the schemas in use, found by the addresses of their columns and
/// Arrow schema (which streams of the same schema share, see `schema::SharedSchemas`).
/// Held weakly, so a template no buffer uses any more is freed.
#[derive(Default)]
pub struct Templates {
    held: HashMap<(usize, usize), Weak<Template>>,
    /// How many were held after the last sweep of freed ones.
    swept: usize,
}

impl Templates {
    /// A new (parked) buffer of `schema`, made from the schema's template.
    pub fn batch(&mut self, schema: Arc<StreamSchema>, options: DecodeOptions) -> Batch {
        let template = self.of(&schema);
        Batch::of_template(schema, options, template)
    }

    fn of(&mut self, schema: &StreamSchema) -> Arc<Template> {
        let key = (
            Arc::as_ptr(&schema.columns) as usize,
            Arc::as_ptr(&schema.arrow) as usize,
        );
        if let Some(template) = self.held.get(&key).and_then(Weak::upgrade) {
            return template;
        }
        // Freed ones are swept when their number could have doubled: linear cost.
        if self.held.len() >= 2 * self.swept.max(16) {
            self.held.retain(|_, template| template.strong_count() > 0);
            self.swept = self.held.len();
        }
        let template = Arc::new(Template::new(schema));
        self.held.insert(key, Arc::downgrade(&template));
        template
    }
}

/// The fields not in the schema that a batch's struct levels skip, for each level that
/// skips any (levels numbered in the order `StructColumn::each_level` visits them).
/// Kept while the batch is parked, and given to twins.
#[derive(Debug, Clone, Default)]
struct Skipped(Vec<(usize, HashSet<String>)>);

impl Skipped {
    fn of(root: &StructColumn) -> Skipped {
        let mut levels = Vec::new();
        let mut at = 0;
        root.each_level(&mut |level| {
            if !level.ignored.is_empty() {
                levels.push((at, level.ignored.clone()));
            }
            at += 1;
        });
        Skipped(levels)
    }

    /// Adds the skipped fields to the levels of `root` (of the same schema).
    fn apply(&self, root: &mut StructColumn) {
        if self.0.is_empty() {
            return;
        }
        let (mut at, mut next) = (0, self.0.iter().peekable());
        root.each_level_mut(&mut |level| {
            if let Some((_, fields)) = next.next_if(|(index, _)| *index == at)
                && level.ignored.len() != fields.len()
            {
                level.ignored.extend(fields.iter().cloned());
            }
            at += 1;
        });
    }
}

/// What a stream's buffer is made from: its schema, options and the fields it skips.
/// A decoding thread makes twins from it (`Batch::twin`).
#[derive(Debug, Clone)]
pub struct Blueprint {
    schema: Arc<StreamSchema>,
    template: Arc<Template>,
    options: DecodeOptions,
    skipped: Skipped,
}

impl Blueprint {
    pub fn schema(&self) -> &Arc<StreamSchema> {
        &self.schema
    }

    /// An empty buffer of this blueprint.
    pub fn build(&self) -> Batch {
        let mut batch =
            Batch::of_template(self.schema.clone(), self.options, self.template.clone());
        batch.skipped = self.skipped.clone();
        batch
    }

    /// About how many bytes an empty buffer of this blueprint takes (see
    /// `empty_size`).
    pub fn empty_size(&self) -> usize {
        empty_size(&self.schema)
    }
}

/// About how many bytes the empty buffers of a schema's columns take: a few hundred
/// per builder (its type, path and field, and the vectors' first allocations), at
/// every depth. Measured with a heap profiler on a 12-column schema.
pub fn empty_size(schema: &StreamSchema) -> usize {
    fn count(fields: &arrow::datatypes::Fields) -> usize {
        fields.iter().map(|f| 1 + nested(f.data_type())).sum()
    }
    fn nested(data_type: &DataType) -> usize {
        match data_type {
            DataType::Struct(fields) => count(fields),
            DataType::List(item) | DataType::LargeList(item) => 1 + nested(item.data_type()),
            _ => 0,
        }
    }
    const PER_BUILDER: usize = 384;
    (1 + count(schema.arrow.fields())) * PER_BUILDER
}

impl Batch {
    /// A new (parked) buffer of `schema`, with a template of its own (see `Templates`
    /// for one shared with other buffers).
    pub fn new(schema: Arc<StreamSchema>, options: DecodeOptions) -> Batch {
        let template = Arc::new(Template::new(&schema));
        Batch::of_template(schema, options, template)
    }

    fn of_template(
        schema: Arc<StreamSchema>,
        options: DecodeOptions,
        template: Arc<Template>,
    ) -> Batch {
        let names = &template.root.layout.names;
        let keys = schema
            .key_properties
            .iter()
            .filter_map(|k| names.iter().position(|name| name == k))
            .collect();
        Batch {
            schema,
            template,
            columns: None,
            skipped: Skipped::default(),
            keys,
            options,
            rows: 0,
            bytes: 0,
            first_line: None,
            newly_ignored: Vec::new(),
            failure: None,
        }
    }

    pub fn schema(&self) -> &Arc<StreamSchema> {
        &self.schema
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input bytes of the buffered records.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The input line of the oldest buffered record.
    pub fn first_line(&self) -> Option<u64> {
        self.first_line
    }

    /// Record fields not in the schema (as paths, `a.b`) seen for the first time since
    /// the last call.
    pub fn take_newly_ignored(&mut self) -> Vec<String> {
        std::mem::take(&mut self.newly_ignored)
    }

    /// Numbers rounded to float64 under `inexact_numbers: warn`, per column path, since
    /// the last call.
    pub fn take_rounded(&mut self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        if let Some(columns) = &mut self.columns {
            columns.root.take_rounded(&mut out);
        }
        out
    }

    /// The buffers made for this batch, made again if it was parked.
    fn columns(&mut self) -> &mut Columns {
        unparked(
            &mut self.columns,
            &self.template,
            &self.schema,
            &mut self.skipped,
        )
    }

    /// Drops the column buffers of a batch that holds no rows, keeping what makes them
    /// again (the schema, the options, the fields skipped). Does nothing to a batch that
    /// holds rows.
    pub fn park(&mut self) {
        if self.rows > 0 {
            return;
        }
        if let Some(columns) = self.columns.take() {
            self.skipped = Skipped::of(&columns.root);
        }
        self.failure = None;
    }

    /// What a twin of this batch is made from (see `Blueprint`).
    pub fn blueprint(&self) -> Blueprint {
        let skipped = match &self.columns {
            Some(columns) => Skipped::of(&columns.root),
            None => self.skipped.clone(),
        };
        Blueprint {
            schema: self.schema.clone(),
            template: self.template.clone(),
            options: self.options,
            skipped,
        }
    }

    /// Decodes one record (a JSON object) and appends it as a row, or explains why not
    /// and leaves the buffer as it was.
    pub fn append(&mut self, record: &str, line: u64, envelope: &Envelope) -> Result<(), String> {
        let mut deserializer = serde_json::Deserializer::from_str(record);
        let decoded = self.decode(&mut deserializer).map_err(|e| {
            self.failure
                .get_or_insert_with(|| crate::protocol::describe_json_error(&e))
                .clone()
        });
        self.end_row(decoded.is_ok(), line, record.len(), envelope)
    }

    /// Decodes one record object from a deserializer into a new row, which `end_row`
    /// then keeps or drops. On error the reason is kept for `end_row`.
    pub fn decode<'de, D: de::Deserializer<'de>>(&mut self, d: D) -> Result<(), D::Error> {
        self.decode_marked(d, None)
    }

    /// `decode`, for a record of a rewritten line whose NaN and infinities `marks`
    /// gives (see `dialect`).
    pub fn decode_marked<'de, D: de::Deserializer<'de>>(
        &mut self,
        d: D,
        marks: Option<&Marks>,
    ) -> Result<(), D::Error> {
        let mut ctx = Ctx {
            options: self.options,
            failure: &mut self.failure,
            newly_ignored: &mut self.newly_ignored,
            replaced: &self.schema.replaced,
            schema: &self.schema,
            marks,
        };
        RootSeed {
            root: &mut unparked(
                &mut self.columns,
                &self.template,
                &self.schema,
                &mut self.skipped,
            )
            .root,
            ctx: &mut ctx,
        }
        .deserialize(d)
    }

    /// Decodes a record object at the scanner's position into a new row, which
    /// `end_row` then keeps or drops, when the record is plain: no escapes, no fields
    /// outside the schema (other than ones already warned about), every value of its
    /// column's type. Otherwise leaves no trace and answers false; the caller decodes
    /// the record with `decode`, which accepts or refuses it with the full rules.
    pub fn decode_plain(&mut self, scanner: &mut Scanner) -> bool {
        if self.options.lenient {
            return false;
        }
        let skip_ignored = !self.options.refuse_unknown_fields;
        let decoded = self.columns().root.plain_fields(scanner, skip_ignored);
        if !decoded {
            self.discard_row();
        }
        decoded
    }

    /// Decodes a line that holds one plain record and nothing else (a batch file's
    /// line) into a new row, as `decode_plain` does; false leaves no trace.
    pub fn decode_plain_line(&mut self, line: &str) -> bool {
        let mut scanner = Scanner::new(line);
        if !self.decode_plain(&mut scanner) {
            return false;
        }
        let whole = scanner.at_end();
        if !whole {
            self.discard_row();
        }
        whole
    }

    /// Keeps the row just decoded (when `decoded`, its keys are present and its
    /// envelope gives valid metadata) or drops it and says why. `bytes` is the record's
    /// input size.
    pub fn end_row(
        &mut self,
        decoded: bool,
        line: u64,
        bytes: usize,
        envelope: &Envelope,
    ) -> Result<(), String> {
        let failure = self.failure.take();
        let checked = match (decoded, failure) {
            (true, _) => self
                .check_keys()
                .and_then(|()| match &mut self.columns().meta {
                    Some(meta) => meta.push(envelope),
                    None => Ok(()),
                }),
            (false, reason) => Err(reason.unwrap_or_else(|| "the record is not valid JSON".into())),
        };
        if checked.is_err() {
            let rows = self.rows;
            self.columns().root.truncate(rows);
            return checked;
        }
        self.rows += 1;
        self.bytes += bytes;
        self.first_line.get_or_insert(line);
        Ok(())
    }

    /// Drops whatever a failed decode left of the row being built.
    pub fn discard_row(&mut self) {
        self.failure = None;
        if let Some(columns) = &mut self.columns {
            columns.root.truncate(self.rows);
        }
    }

    fn check_keys(&self) -> Result<(), String> {
        let Some(columns) = &self.columns else {
            return Err("no row was decoded".into());
        };
        let root = &columns.root;
        for &key in &self.keys {
            if root.children[key].is_null(self.rows) {
                return Err(format!(
                    "record has no value for key property {:?}",
                    root.layout.names[key]
                ));
            }
        }
        Ok(())
    }

    /// Hands out the buffered rows and empties the buffer.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let columns = unparked(
            &mut self.columns,
            &self.template,
            &self.schema,
            &mut self.skipped,
        );
        let mut arrays = columns.root.finish_children()?;
        // The undeclared fields' column is the root's last child, and the file's last
        // column before the metadata columns.
        let extra = if columns.root.layout.has_extra {
            arrays.pop()
        } else {
            None
        };
        if let Some(meta) = &mut columns.meta {
            let no_deleted_at = || ArrowError::SchemaError("no _sdc_deleted_at column".into());
            let deleted_at = arrays.pop().ok_or_else(no_deleted_at)?;
            arrays.extend(extra);
            arrays.extend(meta.finish(deleted_at)?);
        } else {
            arrays.extend(extra);
        }
        if let Some(unit) = self.schema.mage_unit() {
            let columns = self.schema.mage.len();
            arrays.extend(metadata::mage_columns(unit, self.rows, columns)?);
        }
        self.rows = 0;
        self.bytes = 0;
        self.first_line = None;
        RecordBatch::try_new(self.schema.arrow.clone(), arrays)
    }

    /// Whether another thread may decode this stream's records into a twin (see
    /// `twin`): only when a row depends on nothing but its own record's text, so not
    /// with metadata columns (sequence numbers, the envelope) or lenient checks (which
    /// the plain decoder leaves to the full one anyway).
    pub fn splittable(&self) -> bool {
        self.schema.metadata_unit().is_none() && !self.options.lenient
    }

    /// An empty buffer of the same schema and options that skips the same fields not in
    /// the schema, for decoding on another thread.
    pub fn twin(&self) -> Batch {
        self.blueprint().build()
    }

    /// Empties a twin for reuse, keeping its buffers' room, and brings its list of
    /// skipped fields up to date with `of` (of the same schema).
    pub fn reset_twin(&mut self, of: &Blueprint) {
        let root = &mut self.columns().root;
        root.truncate(0);
        of.skipped.apply(root);
        self.rows = 0;
        self.bytes = 0;
        self.first_line = None;
        self.failure = None;
    }

    /// Appends rows `rows` of a twin (same schema) decoded elsewhere, as if they had been
    /// decoded here: `bytes` is their input size, `first_line` the input line of the first.
    pub fn take_rows(
        &mut self,
        twin: &Batch,
        rows: Range<usize>,
        first_line: u64,
        bytes: usize,
    ) -> Result<(), String> {
        let count = rows.len();
        let Some(theirs) = &twin.columns else {
            return Err("the twin holds no rows".into());
        };
        self.columns().root.extend_from(&theirs.root, rows)?;
        self.rows += count;
        self.bytes += bytes;
        self.first_line.get_or_insert(first_line);
        Ok(())
    }
}

/// Anything that finds a stream's buffer by the stream's name: the run's streams, or a
/// decoding thread's twins. The protocol parser then decodes records straight into it.
pub trait BatchOf {
    fn batch_of(&mut self, stream: &str) -> Option<&mut Batch>;
}

impl<T: BatchOf> RecordSink for T {
    fn accepts(&mut self, stream: &str) -> bool {
        self.batch_of(stream).is_some()
    }

    fn decode<'de, D: de::Deserializer<'de>>(
        &mut self,
        stream: &str,
        d: D,
    ) -> Result<(), D::Error> {
        match self.batch_of(stream) {
            Some(batch) => batch.decode(d),
            None => Err(de::Error::custom("no such stream")),
        }
    }

    fn decode_plain(&mut self, stream: &str, scanner: &mut Scanner) -> bool {
        self.batch_of(stream)
            .is_some_and(|batch| batch.decode_plain(scanner))
    }

    fn discard(&mut self, stream: &str) {
        if let Some(batch) = self.batch_of(stream) {
            batch.discard_row();
        }
    }

    fn decode_marked<'de, D: de::Deserializer<'de>>(
        &mut self,
        stream: &str,
        d: D,
        marks: &Marks,
    ) -> Result<(), D::Error> {
        match self.batch_of(stream) {
            Some(batch) => batch.decode_marked(d, Some(marks)),
            None => Err(de::Error::custom("no such stream")),
        }
    }

    fn replaces_surrogates(&mut self, stream: &str) -> bool {
        self.batch_of(stream)
            .is_some_and(|batch| batch.options.replace_surrogates)
    }
}

/// Decoding state shared by the visitors of one record.
struct Ctx<'a> {
    options: DecodeOptions,
    /// The reason a value was refused; serde's own error would say less.
    failure: &'a mut Option<String>,
    newly_ignored: &'a mut Vec<String>,
    /// Record fields whose schema properties metadata columns replaced.
    replaced: &'a [String],
    /// The stream's schema, for the `column_types` a message suggests.
    schema: &'a StreamSchema,
    /// On a rewritten line: where NaN and infinities were.
    marks: Option<&'a Marks>,
}

impl Ctx<'_> {
    fn refuse<E: de::Error>(&mut self, builder: &Builder, got: impl fmt::Display) -> E {
        let expected = builder.expected();
        self.fail_at(builder, format!("expected {expected}, got {got}"))
    }

    /// Fails naming the field, with any `column_types` snippet in the message filled
    /// in for this stream and column.
    fn fail_at<E: de::Error>(&mut self, builder: &Builder, message: String) -> E {
        let (column, whole) = self.schema.override_key(&builder.named.path);
        let message = suggest::fill(&message, &self.schema.stream, &column, whole);
        self.fail(format!("field {:?}: {message}", builder.named.path))
    }

    /// `refuse`, with the reason in parentheses when there is one.
    fn refuse_because<E: de::Error>(&mut self, builder: &Builder, got: String, why: String) -> E {
        if why.is_empty() {
            self.refuse(builder, got)
        } else {
            self.refuse(builder, format_args!("{got} ({why})"))
        }
    }

    fn fail<E: de::Error>(&mut self, message: String) -> E {
        self.failure.get_or_insert(message);
        E::custom("record refused")
    }
}

/// Which nulls a column holds; cut back with its values.
#[derive(Debug)]
struct Validity(BooleanBufferBuilder);

impl Validity {
    fn new() -> Self {
        Validity(BooleanBufferBuilder::new(0))
    }

    fn extend_from(&mut self, other: &Validity, rows: Range<usize>) {
        self.0.append_packed_range(rows, other.0.as_slice());
    }

    /// Hands out the validity; the next batch starts with room for as many rows.
    fn finish(&mut self) -> Option<NullBuffer> {
        let fresh = BooleanBufferBuilder::new(self.0.len());
        let nulls = NullBuffer::new(std::mem::replace(&mut self.0, fresh).finish());
        (nulls.null_count() > 0).then_some(nulls)
    }
}

/// Fixed-width values and their validity.
#[derive(Debug)]
struct Fixed<T> {
    values: Vec<T>,
    valid: Validity,
}

impl<T: ArrowNativeType> Fixed<T> {
    fn new() -> Self {
        Fixed {
            values: Vec::new(),
            valid: Validity::new(),
        }
    }

    fn push(&mut self, value: T) {
        self.values.push(value);
        self.valid.0.append(true);
    }

    fn push_null(&mut self) {
        self.values.push(T::default());
        self.valid.0.append(false);
    }

    fn truncate(&mut self, len: usize) {
        self.values.truncate(len);
        self.valid.0.truncate(len);
    }

    fn extend_from(&mut self, other: &Fixed<T>, rows: Range<usize>) {
        self.values.extend_from_slice(&other.values[rows.clone()]);
        self.valid.extend_from(&other.valid, rows);
    }

    fn finish(&mut self, data_type: DataType) -> Result<ArrayRef, ArrowError> {
        let values = take_keeping_capacity(&mut self.values);
        let data = ArrayData::builder(data_type)
            .len(values.len())
            .add_buffer(Buffer::from_vec(values))
            .nulls(self.valid.finish())
            .build()?;
        Ok(make_array(data))
    }
}

/// Takes a buffer's contents, leaving an empty one a little larger: batches of a
/// stream are alike, so the next one fills it without growing it step by step (and
/// without copying it whole when it is a few bytes longer than the last).
fn take_keeping_capacity<T>(values: &mut Vec<T>) -> Vec<T> {
    let fresh = Vec::with_capacity(values.len() + values.len() / 8);
    std::mem::replace(values, fresh)
}

/// Takes list or string offsets, leaving the leading 0 of an empty array.
fn take_offsets(offsets: &mut Vec<i32>) -> Vec<i32> {
    let taken = take_keeping_capacity(offsets);
    offsets.push(0);
    taken
}

/// Appends the offsets of rows `rows` of `other` to `offsets`, moved to start at `base`
/// (the length of the values they index); returns the range of `other`'s values they
/// cover.
fn extend_offsets(
    offsets: &mut Vec<i32>,
    other: &[i32],
    rows: Range<usize>,
    base: usize,
) -> Result<(usize, usize), String> {
    let (from, to) = (other[rows.start], other[rows.end]);
    let shift = i32::try_from(base)
        .ok()
        .and_then(|base| base.checked_sub(from))
        .filter(|shift| to.checked_add(*shift).is_some())
        .ok_or("more than 2 GiB of text in one batch; lower max_batch_bytes")?;
    offsets.extend(other[rows.start + 1..=rows.end].iter().map(|o| o + shift));
    Ok((from as usize, to as usize))
}

/// The kind of text a string column takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextKind {
    /// JSON strings only.
    Text,
    /// Any value: strings as they are, others as their JSON text.
    Literal,
    /// Any value as its compact JSON text.
    Json,
}

#[derive(Debug)]
enum Kind {
    Int(Fixed<i64>),
    Float {
        values: Fixed<f64>,
        rounded: u64,
    },
    Decimal128(Fixed<i128>, u8, i8),
    Decimal256(Fixed<i256>, u8, i8),
    Bool(BooleanBufferBuilder, Validity),
    Timestamp(Fixed<i64>, TimeUnit),
    Date(Fixed<i32>),
    Time(Fixed<i64>),
    Str {
        offsets: Vec<i32>,
        data: Vec<u8>,
        valid: Validity,
        kind: TextKind,
    },
    // Boxed: a struct's buffers are large, and every builder is as large as its kind.
    Struct(Box<StructColumn>),
    List {
        offsets: Vec<i32>,
        item: Box<Builder>,
        valid: Validity,
        field: FieldRef,
    },
}

impl Kind {
    /// An empty text buffer.
    fn text(kind: TextKind) -> Kind {
        Kind::Str {
            offsets: vec![0],
            data: Vec::new(),
            valid: Validity::new(),
            kind,
        }
    }
}

/// One column's (or nested field's) buffer, with its path for messages.
#[derive(Debug)]
struct Builder {
    named: Arc<Named>,
    kind: Kind,
}

/// What every buffer of one column shares (see `Template`): its path, for messages,
/// and its type.
#[derive(Debug)]
struct Named {
    path: String,
    ty: ColumnType,
}

impl Builder {
    fn new(ty: &ColumnType, path: String) -> Builder {
        let text = Kind::text;
        let kind = match ty {
            ColumnType::Integer => Kind::Int(Fixed::new()),
            ColumnType::Number => Kind::Float {
                values: Fixed::new(),
                rounded: 0,
            },
            ColumnType::Decimal { precision, scale } => match ty.arrow_type() {
                DataType::Decimal128(..) => Kind::Decimal128(Fixed::new(), *precision, *scale),
                _ => Kind::Decimal256(Fixed::new(), *precision, *scale),
            },
            ColumnType::Boolean => Kind::Bool(BooleanBufferBuilder::new(0), Validity::new()),
            ColumnType::Text => text(TextKind::Text),
            ColumnType::Literal => text(TextKind::Literal),
            ColumnType::Json | ColumnType::Extra => text(TextKind::Json),
            ColumnType::Timestamp(unit) => Kind::Timestamp(Fixed::new(), *unit),
            ColumnType::Date => Kind::Date(Fixed::new()),
            ColumnType::Time => Kind::Time(Fixed::new()),
            ColumnType::Struct(columns) => {
                Kind::Struct(Box::new(StructColumn::new(columns, &path)))
            }
            ColumnType::List(item) => Kind::List {
                offsets: vec![0],
                item: Box::new(Builder::new(item, format!("{path}[]"))),
                valid: Validity::new(),
                field: Arc::new(item.field("item")),
            },
            // Decoded as the inner type; `finish` turns the values into their text.
            ColumnType::AsText(inner) => Builder::new(inner, path.clone()).kind,
        };
        Builder {
            named: Arc::new(Named {
                path,
                ty: ty.clone(),
            }),
            kind,
        }
    }

    /// An empty buffer of the same column, sharing what does not change (see
    /// `Template`).
    fn empty(&self) -> Builder {
        let kind = match &self.kind {
            Kind::Int(_) => Kind::Int(Fixed::new()),
            Kind::Float { .. } => Kind::Float {
                values: Fixed::new(),
                rounded: 0,
            },
            Kind::Decimal128(_, precision, scale) => {
                Kind::Decimal128(Fixed::new(), *precision, *scale)
            }
            Kind::Decimal256(_, precision, scale) => {
                Kind::Decimal256(Fixed::new(), *precision, *scale)
            }
            Kind::Bool(..) => Kind::Bool(BooleanBufferBuilder::new(0), Validity::new()),
            Kind::Timestamp(_, unit) => Kind::Timestamp(Fixed::new(), *unit),
            Kind::Date(_) => Kind::Date(Fixed::new()),
            Kind::Time(_) => Kind::Time(Fixed::new()),
            Kind::Str { kind, .. } => Kind::text(*kind),
            Kind::Struct(s) => Kind::Struct(Box::new(s.empty())),
            Kind::List { item, field, .. } => Kind::List {
                offsets: vec![0],
                item: Box::new(item.empty()),
                valid: Validity::new(),
                field: field.clone(),
            },
        };
        Builder {
            named: self.named.clone(),
            kind,
        }
    }

    fn expected(&self) -> String {
        self.named.ty.expected()
    }

    fn len(&self) -> usize {
        match &self.kind {
            Kind::Int(f) | Kind::Timestamp(f, _) | Kind::Time(f) => f.values.len(),
            Kind::Float { values, .. } => values.values.len(),
            Kind::Decimal128(f, ..) => f.values.len(),
            Kind::Decimal256(f, ..) => f.values.len(),
            Kind::Date(f) => f.values.len(),
            Kind::Bool(_, valid) | Kind::Str { valid, .. } | Kind::List { valid, .. } => {
                valid.0.len()
            }
            Kind::Struct(s) => s.len,
        }
    }

    fn is_null(&self, row: usize) -> bool {
        let valid = match &self.kind {
            Kind::Int(f) | Kind::Timestamp(f, _) | Kind::Time(f) => &f.valid,
            Kind::Float { values, .. } => &values.valid,
            Kind::Decimal128(f, ..) => &f.valid,
            Kind::Decimal256(f, ..) => &f.valid,
            Kind::Date(f) => &f.valid,
            Kind::Bool(_, valid) | Kind::Str { valid, .. } | Kind::List { valid, .. } => valid,
            Kind::Struct(s) => &s.valid,
        };
        row >= valid.0.len() || !valid.0.get_bit(row)
    }

    fn push_null(&mut self) {
        match &mut self.kind {
            Kind::Int(f) | Kind::Timestamp(f, _) | Kind::Time(f) => f.push_null(),
            Kind::Float { values, .. } => values.push_null(),
            Kind::Decimal128(f, ..) => f.push_null(),
            Kind::Decimal256(f, ..) => f.push_null(),
            Kind::Date(f) => f.push_null(),
            Kind::Bool(values, valid) => {
                values.append(false);
                valid.0.append(false);
            }
            Kind::Str { offsets, valid, .. } | Kind::List { offsets, valid, .. } => {
                offsets.push(*offsets.last().unwrap_or(&0));
                valid.0.append(false);
            }
            Kind::Struct(s) => s.push_null(),
        }
    }

    fn truncate(&mut self, len: usize) {
        match &mut self.kind {
            Kind::Int(f) | Kind::Timestamp(f, _) | Kind::Time(f) => f.truncate(len),
            Kind::Float { values, .. } => values.truncate(len),
            Kind::Decimal128(f, ..) => f.truncate(len),
            Kind::Decimal256(f, ..) => f.truncate(len),
            Kind::Date(f) => f.truncate(len),
            Kind::Bool(values, valid) => {
                values.truncate(len);
                valid.0.truncate(len);
            }
            Kind::Str {
                offsets,
                data,
                valid,
                ..
            } => {
                offsets.truncate(len + 1);
                data.truncate(offsets[len] as usize);
                valid.0.truncate(len);
            }
            Kind::List {
                offsets,
                item,
                valid,
                ..
            } => {
                offsets.truncate(len + 1);
                item.truncate(offsets[len] as usize);
                valid.0.truncate(len);
            }
            Kind::Struct(s) => s.truncate(len),
        }
    }

    /// Visits the struct levels in this column (see `StructColumn::each_level`).
    fn each_level(&self, visit: &mut dyn FnMut(&StructColumn)) {
        match &self.kind {
            Kind::Struct(s) => s.each_level(visit),
            Kind::List { item, .. } => item.each_level(visit),
            _ => {}
        }
    }

    fn each_level_mut(&mut self, visit: &mut dyn FnMut(&mut StructColumn)) {
        match &mut self.kind {
            Kind::Struct(s) => s.each_level_mut(visit),
            Kind::List { item, .. } => item.each_level_mut(visit),
            _ => {}
        }
    }

    /// Appends rows `rows` of a builder of the same type.
    fn extend_from(&mut self, other: &Builder, rows: Range<usize>) -> Result<(), String> {
        match (&mut self.kind, &other.kind) {
            (Kind::Int(f), Kind::Int(o))
            | (Kind::Timestamp(f, _), Kind::Timestamp(o, _))
            | (Kind::Time(f), Kind::Time(o)) => f.extend_from(o, rows),
            (Kind::Float { values, .. }, Kind::Float { values: o, .. }) => {
                values.extend_from(o, rows)
            }
            (Kind::Decimal128(f, ..), Kind::Decimal128(o, ..)) => f.extend_from(o, rows),
            (Kind::Decimal256(f, ..), Kind::Decimal256(o, ..)) => f.extend_from(o, rows),
            (Kind::Date(f), Kind::Date(o)) => f.extend_from(o, rows),
            (Kind::Bool(values, valid), Kind::Bool(o_values, o_valid)) => {
                values.append_packed_range(rows.clone(), o_values.as_slice());
                valid.extend_from(o_valid, rows);
            }
            (
                Kind::Str {
                    offsets,
                    data,
                    valid,
                    ..
                },
                Kind::Str {
                    offsets: o_offsets,
                    data: o_data,
                    valid: o_valid,
                    ..
                },
            ) => {
                let (from, to) = extend_offsets(offsets, o_offsets, rows.clone(), data.len())?;
                data.extend_from_slice(&o_data[from..to]);
                valid.extend_from(o_valid, rows);
            }
            (
                Kind::List {
                    offsets,
                    item,
                    valid,
                    ..
                },
                Kind::List {
                    offsets: o_offsets,
                    item: o_item,
                    valid: o_valid,
                    ..
                },
            ) => {
                let (from, to) = extend_offsets(offsets, o_offsets, rows.clone(), item.len())?;
                item.extend_from(o_item, from..to)?;
                valid.extend_from(o_valid, rows);
            }
            (Kind::Struct(s), Kind::Struct(o)) => s.extend_from(o, rows)?,
            _ => {
                return Err(format!(
                    "column {:?}: the twin's type differs",
                    self.named.path
                ));
            }
        }
        Ok(())
    }

    fn take_rounded(&mut self, out: &mut Vec<(String, u64)>) {
        match &mut self.kind {
            Kind::Float { rounded, .. } if *rounded > 0 => {
                out.push((self.named.path.clone(), std::mem::take(rounded)));
            }
            Kind::Struct(s) => s.take_rounded(out),
            Kind::List { item, .. } => item.take_rounded(out),
            _ => {}
        }
    }

    fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let values = self.finish_values()?;
        Ok(match self.named.ty {
            ColumnType::AsText(_) => as_text(&values),
            _ => values,
        })
    }

    /// The buffered values as an array of the type they were decoded as.
    fn finish_values(&mut self) -> Result<ArrayRef, ArrowError> {
        let data_type = self.named.ty.value_type().arrow_type();
        match &mut self.kind {
            Kind::Int(f) | Kind::Timestamp(f, _) | Kind::Time(f) => f.finish(data_type),
            Kind::Float { values, .. } => values.finish(data_type),
            Kind::Decimal128(f, ..) => f.finish(data_type),
            Kind::Decimal256(f, ..) => f.finish(data_type),
            Kind::Date(f) => f.finish(data_type),
            Kind::Bool(values, valid) => {
                let data = ArrayData::builder(data_type)
                    .len(values.len())
                    .add_buffer(values.finish().into_inner())
                    .nulls(valid.finish())
                    .build()?;
                Ok(make_array(data))
            }
            Kind::Str {
                offsets,
                data,
                valid,
                ..
            } => {
                let offsets = OffsetBuffer::new(ScalarBuffer::from(take_offsets(offsets)));
                let data = Buffer::from_vec(take_keeping_capacity(data));
                Ok(Arc::new(StringArray::try_new(
                    offsets,
                    data,
                    valid.finish(),
                )?))
            }
            Kind::List {
                offsets,
                item,
                valid,
                field,
            } => {
                let offsets = OffsetBuffer::new(ScalarBuffer::from(take_offsets(offsets)));
                let values = item.finish()?;
                Ok(Arc::new(ListArray::try_new(
                    field.clone(),
                    offsets,
                    values,
                    valid.finish(),
                )?))
            }
            Kind::Struct(s) => {
                let children = s.finish_children()?;
                Ok(Arc::new(StructArray::try_new(
                    s.layout.fields.clone(),
                    children,
                    s.valid.finish(),
                )?))
            }
        }
    }

    // ---- decoding: each takes one JSON value for this column ----

    fn push_text(&mut self, text: &str) -> Result<(), String> {
        let Kind::Str {
            offsets,
            data,
            valid,
            ..
        } = &mut self.kind
        else {
            return Err("not a string column".into());
        };
        data.extend_from_slice(text.as_bytes());
        let end = i32::try_from(data.len())
            .map_err(|_| "more than 2 GiB of text in one batch; lower max_batch_bytes")?;
        offsets.push(end);
        valid.0.append(true);
        Ok(())
    }

    /// A JSON number (or, leniently, a string holding one) for a numeric column.
    fn push_number(&mut self, text: &str) -> Result<(), String> {
        match &mut self.kind {
            Kind::Int(f) => f.push(values::parse_integer(text)?),
            Kind::Float { values, .. } => {
                let (value, exact) = values::parse_float(text)?;
                if !exact {
                    return Err(values::INEXACT.into());
                }
                values.push(value);
            }
            Kind::Decimal128(f, precision, scale) => {
                let value = values::parse_decimal(text, *precision, *scale)?;
                f.push(value.as_i128());
            }
            Kind::Decimal256(f, precision, scale) => {
                f.push(values::parse_decimal(text, *precision, *scale)?);
            }
            _ => return Err(String::new()),
        }
        Ok(())
    }

    /// Stores a float that is not exact, under `inexact_numbers: warn`.
    fn push_rounded(&mut self, text: &str) -> Result<(), String> {
        let Kind::Float { values, rounded } = &mut self.kind else {
            return Err(String::new());
        };
        let (value, _) = values::parse_float(text)?;
        values.push(value);
        *rounded += 1;
        Ok(())
    }

    fn push_str_value(&mut self, text: &str) -> Result<(), String> {
        match &mut self.kind {
            Kind::Timestamp(f, unit) => f.push(values::parse_timestamp(text, *unit)?),
            Kind::Date(f) => f.push(values::parse_date(text)?),
            Kind::Time(f) => f.push(values::parse_time(text)?),
            Kind::Str { .. } => self.push_text(text)?,
            _ => return Err(String::new()),
        }
        Ok(())
    }

    /// One plain value for this builder, or false when it needs the full decoder.
    fn plain_value(&mut self, scanner: &mut Scanner, skip_ignored: bool) -> bool {
        match (scanner.peek(), &mut self.kind) {
            (Some(b'n'), _) if scanner.eat_literal(b"null") => {
                self.push_null();
                true
            }
            (Some(b't'), Kind::Bool(..)) => scanner.eat_literal(b"true") && self.push_bool(true),
            (Some(b'f'), Kind::Bool(..)) => scanner.eat_literal(b"false") && self.push_bool(false),
            (
                Some(b'"'),
                Kind::Str {
                    kind: TextKind::Text,
                    ..
                }
                | Kind::Timestamp(..)
                | Kind::Date(_)
                | Kind::Time(_),
            ) => scanner
                .plain_str()
                .is_some_and(|text| self.push_str_value(text).is_ok()),
            (
                Some(b'-' | b'0'..=b'9'),
                Kind::Int(_) | Kind::Float { .. } | Kind::Decimal128(..) | Kind::Decimal256(..),
            ) => scanner
                .number()
                .is_some_and(|text| self.push_number(text).is_ok()),
            (Some(b'{'), Kind::Struct(s)) => s.plain_fields(scanner, skip_ignored),
            (
                Some(b'['),
                Kind::List {
                    offsets,
                    item,
                    valid,
                    ..
                },
            ) => {
                scanner.eat(b'[');
                if !scanner.items(b']', |s| item.plain_value(s, skip_ignored)) {
                    return false;
                }
                let Ok(end) = i32::try_from(item.len()) else {
                    return false;
                };
                offsets.push(end);
                valid.0.append(true);
                true
            }
            _ => false,
        }
    }

    fn push_bool(&mut self, value: bool) -> bool {
        match &mut self.kind {
            Kind::Bool(values, valid) => {
                values.append(value);
                valid.0.append(true);
                true
            }
            _ => false,
        }
    }
}

/// Each value's text as CSV writes it (`HH:MM:SS[.ffffff]`, a decimal's digits at its
/// scale), for a column stored as text (`ColumnType::AsText`): one rendering, so a
/// value reads the same in every file type.
fn as_text(values: &ArrayRef) -> ArrayRef {
    let column = text::Column::new(values.as_ref(), None);
    let mut out = StringBuilder::with_capacity(values.len(), values.len() * 16);
    let mut value = Vec::new();
    for row in 0..values.len() {
        if column.is_null(row) {
            out.append_null();
            continue;
        }
        value.clear();
        column.render_text(row, &mut value);
        out.append_value(String::from_utf8_lossy(&value));
    }
    Arc::new(out.finish())
}

/// A struct's fields (or the record's columns), by name.
#[derive(Debug)]
struct StructColumn {
    layout: Arc<Layout>,
    children: Vec<Builder>,
    valid: Validity,
    len: usize,
    ignored: HashSet<String>,
}

/// What every buffer of one struct level shares (see `Template`): its fields' names,
/// types and Arrow fields.
#[derive(Debug)]
struct Layout {
    names: Vec<String>,
    /// Each name as JSON text with its quotes, where it needs no escape.
    quoted: Vec<Option<Box<[u8]>>>,
    /// Children whose fields are handed out as columns of their own (flattened).
    flattened: Vec<bool>,
    fields: Fields,
    path: String,
    /// Whether the last child holds the fields this level does not declare.
    has_extra: bool,
}

impl StructColumn {
    /// The undeclared fields' column (`ColumnType::Extra`) comes last among the
    /// children, after any other column, and has no name records can match.
    fn new(columns: &[Column], path: &str) -> StructColumn {
        let child_path = |name: &str| {
            if path.is_empty() {
                name.to_owned()
            } else {
                format!("{path}.{name}")
            }
        };
        let is_extra = |c: &&Column| c.ty == ColumnType::Extra;
        let declared: Vec<&Column> = columns.iter().filter(|c| !is_extra(c)).collect();
        let extra = columns.iter().find(is_extra);
        let children: Vec<&Column> = declared.iter().copied().chain(extra).collect();
        let layout = Layout {
            names: declared.iter().map(|c| c.name.clone()).collect(),
            quoted: declared.iter().map(|c| scan::quoted(&c.name)).collect(),
            flattened: children.iter().map(|c| c.flattened).collect(),
            fields: children
                .iter()
                .map(|c| Arc::new(c.ty.field(&c.output_name)))
                .collect(),
            path: path.to_owned(),
            has_extra: extra.is_some(),
        };
        StructColumn {
            layout: Arc::new(layout),
            children: children
                .iter()
                .map(|c| Builder::new(&c.ty, child_path(&c.name)))
                .collect(),
            valid: Validity::new(),
            len: 0,
            ignored: HashSet::new(),
        }
    }

    /// An empty buffer of the same level, sharing its layout; it skips no fields.
    fn empty(&self) -> StructColumn {
        StructColumn {
            layout: self.layout.clone(),
            children: self.children.iter().map(Builder::empty).collect(),
            valid: Validity::new(),
            len: 0,
            ignored: HashSet::new(),
        }
    }

    /// The undeclared fields' column, when this level keeps them.
    fn extra(&mut self) -> Option<&mut Builder> {
        if self.layout.has_extra {
            self.children.last_mut()
        } else {
            None
        }
    }

    /// Adds one undeclared field to the row's `_sdc_extra` object. `key` is the name
    /// as JSON text (quoted and escaped), `value` the field's JSON text.
    fn push_extra(&mut self, key: &str, value: &str) -> bool {
        let Some(Builder {
            kind: Kind::Str { offsets, data, .. },
            ..
        }) = self.extra()
        else {
            return false;
        };
        let opened = data.len() > offsets.last().map_or(0, |&o| o as usize);
        data.push(if opened { b',' } else { b'{' });
        data.extend_from_slice(key.as_bytes());
        data.push(b':');
        data.extend_from_slice(values::compact_json(value).as_bytes());
        true
    }

    /// Ends the row's `_sdc_extra` object, if a field opened it (else the column is left
    /// for the null that fills every column the record did not give).
    fn close_extra(&mut self) -> bool {
        let Some(Builder {
            kind:
                Kind::Str {
                    offsets,
                    data,
                    valid,
                    ..
                },
            ..
        }) = self.extra()
        else {
            return true;
        };
        if data.len() == offsets.last().map_or(0, |&o| o as usize) {
            return true;
        }
        data.push(b'}');
        let Ok(end) = i32::try_from(data.len()) else {
            return false;
        };
        offsets.push(end);
        valid.0.append(true);
        true
    }

    /// The child for a field name. Taps write fields in the same order every record, so
    /// the field after the last one found is tried first; then a linear search (schemas
    /// are small, and comparing a few short strings beats hashing each key).
    fn child_index(&self, name: &str, guess: usize) -> Option<usize> {
        match self.layout.names.get(guess) {
            Some(n) if same(n, name) => Some(guess),
            _ => self.layout.names.iter().position(|n| same(n, name)),
        }
    }

    fn push_null(&mut self) {
        for child in &mut self.children {
            child.push_null();
        }
        self.valid.0.append(false);
        self.len += 1;
    }

    fn truncate(&mut self, len: usize) {
        for child in &mut self.children {
            child.truncate(len);
        }
        self.valid.0.truncate(len);
        self.len = len;
    }

    fn extend_from(&mut self, other: &StructColumn, rows: Range<usize>) -> Result<(), String> {
        for (child, theirs) in self.children.iter_mut().zip(&other.children) {
            child.extend_from(theirs, rows.clone())?;
        }
        self.valid.extend_from(&other.valid, rows.clone());
        self.len += rows.len();
        Ok(())
    }

    /// Visits this level, then the struct levels within its children in order (inside
    /// lists too): the same order for every buffer of one schema.
    fn each_level(&self, visit: &mut dyn FnMut(&StructColumn)) {
        visit(self);
        for child in &self.children {
            child.each_level(visit);
        }
    }

    fn each_level_mut(&mut self, visit: &mut dyn FnMut(&mut StructColumn)) {
        visit(self);
        for child in &mut self.children {
            child.each_level_mut(visit);
        }
    }

    fn take_rounded(&mut self, out: &mut Vec<(String, u64)>) {
        for child in &mut self.children {
            child.take_rounded(out);
        }
    }

    fn finish_children(&mut self) -> Result<Vec<ArrayRef>, ArrowError> {
        let mut arrays = Vec::with_capacity(self.children.len());
        self.finish_into(&mut arrays)?;
        Ok(arrays)
    }

    /// Appends the children's arrays, a flattened child's own children in its place:
    /// a null object has already made each of its fields null.
    fn finish_into(&mut self, arrays: &mut Vec<ArrayRef>) -> Result<(), ArrowError> {
        self.len = 0;
        for (child, &flattened) in self.children.iter_mut().zip(&self.layout.flattened) {
            match &mut child.kind {
                Kind::Struct(s) if flattened => {
                    s.valid.finish();
                    s.finish_into(arrays)?;
                }
                _ => arrays.push(child.finish()?),
            }
        }
        Ok(())
    }

    fn visit_fields<'de, A: MapAccess<'de>>(
        &mut self,
        mut map: A,
        ctx: &mut Ctx,
    ) -> Result<(), A::Error> {
        let row = self.len;
        let mut guess = 0;
        while let Some(BorrowedStr(key)) = map.next_key::<BorrowedStr<'de>>()? {
            let Some(i) = self.child_index(&key, guess) else {
                let replaced =
                    self.layout.path.is_empty() && ctx.replaced.iter().any(|r| *r == key);
                if self.layout.has_extra && !replaced {
                    let raw = map.next_value::<&'de RawValue>()?;
                    self.extra_field(&key, raw.get(), ctx)?;
                } else {
                    self.unknown_field(&key, ctx)?;
                    map.next_value::<IgnoredAny>()?;
                }
                continue;
            };
            guess = i + 1;
            let child = &mut self.children[i];
            if child.len() > row {
                return Err(ctx.fail(format!("field {:?} appears twice", child.named.path)));
            }
            map.next_value_seed(ValueSeed {
                builder: child,
                ctx,
            })?;
        }
        if self.layout.has_extra && !self.close_extra() {
            return Err(
                ctx.fail("more than 2 GiB of text in one batch; lower max_batch_bytes".into())
            );
        }
        for child in &mut self.children {
            if child.len() == row {
                child.push_null();
            }
        }
        self.valid.0.append(true);
        self.len += 1;
        Ok(())
    }

    /// An undeclared field kept in `_sdc_extra`; NaN and infinities cannot be, since
    /// the column holds JSON.
    fn extra_field<E: de::Error>(&mut self, key: &str, raw: &str, ctx: &mut Ctx) -> Result<(), E> {
        if let Some(value) = ctx.marks.and_then(|marks| marks.within(raw)) {
            let path = if self.layout.path.is_empty() {
                key.to_owned()
            } else {
                format!("{}.{key}", self.layout.path)
            };
            return Err(ctx.fail(format!(
                "field {path:?}: {} in a field additionalProperties keeps, which JSON text cannot hold",
                non_finite_name(value)
            )));
        }
        let key = serde_json::to_string(key).unwrap_or_default();
        self.push_extra(&key, raw);
        Ok(())
    }

    /// The plain-JSON twin of `visit_fields` (see `Batch::decode_plain`).
    fn plain_fields(&mut self, scanner: &mut Scanner, skip_ignored: bool) -> bool {
        if !scanner.eat(b'{') {
            return false;
        }
        let row = self.len;
        let (mut guess, mut filled) = (0, 0);
        let read = scanner.items(b'}', |scanner| {
            let expected = self.layout.quoted.get(guess).and_then(Option::as_deref);
            let i = if expected.is_some_and(|quoted| scanner.eat_literal(quoted)) {
                guess
            } else {
                let Some(key) = scanner.plain_str() else {
                    return false;
                };
                match self.child_index(key, guess) {
                    Some(i) => i,
                    None => {
                        return scanner.eat(b':') && self.plain_unknown(key, scanner, skip_ignored);
                    }
                }
            };
            if !scanner.eat(b':') {
                return false;
            }
            guess = i + 1;
            filled += 1;
            let child = &mut self.children[i];
            child.len() == row && child.plain_value(scanner, skip_ignored)
        });
        if !read || self.layout.has_extra && !self.close_extra() {
            return false;
        }
        // A field given twice was refused above, so `filled` counts distinct fields.
        if filled < self.children.len() {
            for child in &mut self.children {
                if child.len() == row {
                    child.push_null();
                }
            }
        }
        self.valid.0.append(true);
        self.len += 1;
        true
    }

    /// The value of a field the schema does not declare, on the plain path: skipped
    /// when it was warned about (or a metadata column replaced it), kept in
    /// `_sdc_extra` where this level keeps such fields; else declined (false).
    #[cold]
    fn plain_unknown(&mut self, key: &str, scanner: &mut Scanner, skip_ignored: bool) -> bool {
        if (skip_ignored || self.layout.has_extra) && self.ignored.contains(key) {
            return scanner.skip_value();
        }
        self.layout.has_extra
            && scanner
                .value_text()
                .is_some_and(|value| self.push_extra(&format!("\"{key}\""), value))
    }

    fn unknown_field<E: de::Error>(&mut self, key: &str, ctx: &mut Ctx) -> Result<(), E> {
        if self.layout.path.is_empty() && ctx.replaced.iter().any(|name| name == key) {
            return Ok(());
        }
        let path = if self.layout.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.layout.path)
        };
        if ctx.options.refuse_unknown_fields {
            return Err(ctx.fail(format!(
                "field {path:?} is not in the schema (unknown_fields is \"fail\")"
            )));
        }
        if self.ignored.insert(key.to_owned()) {
            ctx.newly_ignored.push(path);
        }
        Ok(())
    }
}

/// The record object itself.
struct RootSeed<'b, 'c> {
    root: &'b mut StructColumn,
    ctx: &'b mut Ctx<'c>,
}

impl<'de> DeserializeSeed<'de> for RootSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if self.ctx.marks.is_some() {
            // Not an object then, but its text is needed to say what it is.
            let raw = <&'de RawValue>::deserialize(d)?;
            if !raw.get().starts_with('{') {
                return Err(self.not_an_object(raw.get()));
            }
            let mut inner = serde_json::Deserializer::from_str(raw.get());
            return de::Deserializer::deserialize_map(&mut inner, self).map_err(de::Error::custom);
        }
        d.deserialize_any(self)
    }
}

impl RootSeed<'_, '_> {
    fn not_an_object<E: de::Error>(self, what: &str) -> E {
        self.ctx.fail(crate::protocol::not_an_object(what))
    }
}

impl<'de> Visitor<'de> for RootSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a record object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        self.root.visit_fields(map, self.ctx)
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self.not_an_object("null"))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        Err(self.not_an_object(if v { "true" } else { "false" }))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        Err(self.not_an_object(&v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        Err(self.not_an_object(&v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        Err(self.not_an_object(&v.to_string()))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        let quoted = serde_json::to_string(v).unwrap_or_default();
        Err(self.not_an_object(&quoted))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.not_an_object("[]"))
    }
}

/// One JSON value for one builder.
struct ValueSeed<'b, 'c> {
    builder: &'b mut Builder,
    ctx: &'b mut Ctx<'c>,
}

impl ValueSeed<'_, '_> {
    /// Numbers, decimals and JSON text are taken from the value's raw text, so nothing
    /// passes through a float on the way.
    fn takes_raw_text(&self) -> bool {
        let lenient_text = self.ctx.options.lenient
            && matches!(
                self.builder.kind,
                Kind::Str {
                    kind: TextKind::Text,
                    ..
                }
            );
        lenient_text
            || matches!(
                self.builder.kind,
                Kind::Int(_)
                    | Kind::Float { .. }
                    | Kind::Decimal128(..)
                    | Kind::Decimal256(..)
                    | Kind::Str {
                        kind: TextKind::Literal | TextKind::Json,
                        ..
                    }
            )
    }

    fn raw<E: de::Error>(self, raw: &str) -> Result<(), E> {
        let ValueSeed { builder, ctx } = self;
        let first = raw.as_bytes().first().copied().unwrap_or(b'n');
        if raw == "null" {
            builder.push_null();
            return Ok(());
        }
        let result = match (&builder.kind, first) {
            (
                Kind::Str {
                    kind: TextKind::Json,
                    ..
                },
                _,
            ) => builder.push_text(&values::compact_json(raw)),
            (Kind::Str { .. }, b'"') => match serde_json::from_str::<Cow<str>>(raw) {
                Ok(text) => builder.push_text(&text),
                Err(e) => Err(e.to_string()),
            },
            (Kind::Str { .. }, _) => builder.push_text(&values::compact_json(raw)),
            (_, b'"') if ctx.options.lenient => match serde_json::from_str::<String>(raw) {
                Ok(text) => builder.push_number(text.trim()),
                Err(e) => Err(e.to_string()),
            },
            (_, b'-' | b'0'..=b'9') => {
                let pushed = builder.push_number(raw);
                match pushed {
                    Err(why) if why == values::INEXACT => {
                        if ctx.options.inexact_numbers == InexactNumbers::Warn {
                            builder.push_rounded(raw)
                        } else {
                            let message = format!(
                                "the number {} cannot be held exactly by a float64 column; set {} to store it exactly, or {} to store the nearest float64",
                                ShownNumber(raw),
                                suggest::column_type_mark(&values::exact_type(raw)),
                                suggest::setting("inexact_numbers", json!("warn"))
                            );
                            return Err(ctx.fail_at(builder, message));
                        }
                    }
                    other => other,
                }
            }
            (_, b'"') if holds_number(raw) => Err(TAKE_STRINGS.to_owned()),
            _ => Err(String::new()),
        };
        result.map_err(|why| refuse_with(ctx, builder, raw, why))
    }
}

/// Why a string is refused from a number or boolean column, and the setting that takes
/// it (taps that read spreadsheets or APIs often send numbers as strings).
const TAKE_STRINGS: &str =
    "\"validate_records\": false takes strings that hold numbers or booleans into such columns";

/// Whether a JSON string holds a number that `validate_records: false` would take.
fn holds_number(raw: &str) -> bool {
    serde_json::from_str::<String>(raw).is_ok_and(|text| text.trim().parse::<f64>().is_ok())
}

/// The error for a value that does not fit, with the reason when there is one.
fn refuse_with<E: de::Error>(ctx: &mut Ctx, builder: &Builder, raw: &str, why: String) -> E {
    ctx.refuse_because(builder, values::describe_raw(raw), why)
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if let Some(marks) = self.ctx.marks {
            let raw = <&'de RawValue>::deserialize(d)?;
            return self.marked(raw.get(), marks);
        }
        if self.takes_raw_text() {
            let raw = <&'de RawValue>::deserialize(d)?;
            return self.raw(raw.get());
        }
        d.deserialize_any(self)
    }
}

impl<'de> ValueSeed<'_, '_> {
    /// A value of a rewritten line: a NaN or infinity goes into a float column and is
    /// refused anywhere else (JSON text cannot hold one either); any other value is
    /// decoded from its own text, so that nested values are looked at the same way.
    fn marked<E: de::Error>(self, text: &'de str, marks: &Marks) -> Result<(), E> {
        if let Some(value) = marks.value_at(text) {
            if let Kind::Float { values, .. } = &mut self.builder.kind {
                values.push(value);
                return Ok(());
            }
            let got = format_args!(
                "{} (only float columns take NaN and Infinity)",
                non_finite_name(value)
            );
            return Err(self.ctx.refuse(self.builder, got));
        }
        if self.takes_raw_text() {
            if let Some(value) = marks.within(text) {
                let got = format_args!(
                    "a value holding {}, which JSON text cannot hold",
                    non_finite_name(value)
                );
                return Err(self.ctx.refuse(self.builder, got));
            }
            return self.raw(text);
        }
        let mut inner = serde_json::Deserializer::from_str(text);
        de::Deserializer::deserialize_any(&mut inner, self).map_err(E::custom)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.builder.expected())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.builder.push_null();
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        if self.builder.push_bool(v) {
            return Ok(());
        }
        Err(self.ctx.refuse(self.builder, v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        Err(self
            .ctx
            .refuse(self.builder, format_args!("the number {v}")))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        Err(self
            .ctx
            .refuse(self.builder, format_args!("the number {v}")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        Err(self
            .ctx
            .refuse(self.builder, format_args!("the number {v}")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        let lenient_bool = match (self.ctx.options.lenient, v) {
            (true, "true") => Some(true),
            (true, "false") => Some(false),
            _ => None,
        };
        if let Some(b) = lenient_bool
            && self.builder.push_bool(b)
        {
            return Ok(());
        }
        self.builder.push_str_value(v).map_err(|why| {
            let got = format!("the string {}", Shown(v));
            let why = match (&self.builder.kind, v) {
                (Kind::Bool(..), "true" | "false") => TAKE_STRINGS.to_owned(),
                _ => why,
            };
            self.ctx.refuse_because(self.builder, got, why)
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        match &mut self.builder.kind {
            Kind::Struct(s) => s.visit_fields(map, self.ctx),
            _ => Err(self.ctx.refuse(self.builder, "an object")),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Kind::List {
            offsets,
            item,
            valid,
            ..
        } = &mut self.builder.kind
        else {
            return Err(self.ctx.refuse(self.builder, "an array"));
        };
        while seq
            .next_element_seed(ValueSeed {
                builder: item,
                ctx: self.ctx,
            })?
            .is_some()
        {}
        let end = i32::try_from(item.len()).map_err(|_| {
            self.ctx
                .fail("more than 2^31 list items in one batch".into())
        })?;
        offsets.push(end);
        valid.0.append(true);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::TypeOptions;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{
        Date32Type, Decimal128Type, Float64Type, Int64Type, Time64MicrosecondType,
        TimestampMicrosecondType,
    };

    const NONE: &Envelope = &Envelope {
        time_extracted: None,
        table_version: None,
    };

    fn batch_with(schema: &str, keys: &[&str], options: DecodeOptions) -> Batch {
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        let schema = StreamSchema::from_json("s", schema, &keys, &TypeOptions::default()).unwrap();
        Batch::new(Arc::new(schema), options)
    }

    fn batch(schema: &str, keys: &[&str]) -> Batch {
        batch_with(schema, keys, DecodeOptions::default())
    }

    const SCHEMA: &str = r#"{"properties": {
        "id": {"type": "integer"}, "x": {"type": ["null", "number"]}, "ok": {"type": "boolean"},
        "s": {"type": "string"}, "ts": {"type": "string", "format": "date-time"},
        "d": {"type": "string", "format": "date"}, "t": {"type": "string", "format": "time"},
        "j": {}, "price": {"type": "number", "multipleOf": 0.01},
        "o": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "array", "items": {"type": "string"}}}}}}"#;

    /// Decodes `records` both ways: plainly where the fast path takes a record, fully
    /// otherwise; and fully only. The two batches must be the same.
    fn both_ways(schema: &str, records: &[&str]) -> (RecordBatch, RecordBatch, usize) {
        let mut plain = batch(schema, &[]);
        let mut full = batch(schema, &[]);
        let mut taken = 0;
        for (line, record) in records.iter().enumerate() {
            let rows = plain.rows();
            let mut scanner = Scanner::new(record);
            let ok = if plain.decode_plain(&mut scanner) && scanner.at_end() {
                taken += 1;
                plain.end_row(true, line as u64, record.len(), NONE)
            } else {
                assert_eq!(
                    plain.columns().root.children[0].len(),
                    rows,
                    "a declined record left a trace"
                );
                plain.discard_row();
                plain.append(record, line as u64, NONE)
            };
            assert_eq!(ok, full.append(record, line as u64, NONE), "{record}");
        }
        (plain.finish().unwrap(), full.finish().unwrap(), taken)
    }

    #[test]
    fn plain_path_decodes_as_the_full_one() {
        let records = [
            r#"{"id": 7, "x": 1.5, "ok": true, "s": "plain", "ts": "2024-01-02T03:04:05.123456+01:00", "d": "0001-01-01", "t": "23:59:59.5", "price": 12345678901234567.89, "o": {"b": ["p", "q"], "a": 3}}"#,
            r#"{"id":-0,"x":-2.5e-3,"ok":false,"s":"","o":null,"price":null}"#,
            r#"{ "id" : 1 , "x" : 0 , "o" : { "a" : null , "b" : [ ] } }"#,
            r#"{"o": {"a": 1, "b": null}, "id": 2, "s": "héllo wörld, a longer text than eight bytes"}"#,
            r#"{"id": 3, "s": "a\"b", "o": {"b": ["x\ny"]}}"#,
            r#"{"id": 4, "extra": {"deep": [1, {"k": "v"}]}, "s": "after"}"#,
            r#"{"id": 5, "extra": 2}"#,
            r#"{"id": 6, "x": 0.1}"#,
            r#"{"id": 7, "x": "1.5"}"#,
            r#"{"id": 8, "id": 9}"#,
            r#"{"id": 10, "j": {"k": [1, 2]}}"#,
            r#"{"id": 11, "s": 5}"#,
            r#"{"id": 12, "ts": "not a time"}"#,
            r#"{"id": 13, "o": {"a": 1.5}}"#,
            r#"{"id": 14, "ok": tru}"#,
            r#"{"id": 15, "x": 01}"#,
            r#"{"id": 16,}"#,
            r#"{"id": 17, "s": "tab	inside"}"#,
            r#"{"id": 18, "o": {"b": ["a", 1]}}"#,
            r#"{"id": 99999999999999999999}"#,
            // Names that start like the expected one, and one spelled with an escape.
            r#"{"idx": 1, "id": 20, "okay": true, "ok": true}"#,
            r#"{"id": 21, "idx": 2, "s": "x"}"#,
            r#"{"i\u0064": 22, "s": "y"}"#,
        ];
        let (plain, full, taken) = both_ways(SCHEMA, &records);
        assert_eq!(plain, full);
        // Records 1-4, 7 and 22 (fields already warned about) and 8 take the fast path.
        assert_eq!(taken, 7);
    }

    #[test]
    fn undeclared_fields_are_kept_where_the_schema_allows_them_both_ways() {
        let schema = r#"{"additionalProperties": true, "properties": {"id": {"type": "integer"},
            "o": {"type": "object", "additionalProperties": true, "properties": {"k": {"type": "integer"}}}}}"#;
        let records = [
            r#"{"id": 1, "z": {"a": [1, 2]}, "o": {"k": 1, "y": "x y"}}"#,
            r#"{"id": 2}"#,
            r#"{"w": "first", "id": 3, "v": null, "o": {"y": "a\"b"}}"#,
            r#"{"id": 4, "o": null, "z": 1.50}"#,
        ];
        let (plain, full, taken) = both_ways(schema, &records);
        assert_eq!(plain, full);
        assert_eq!(taken, 3);
        let extra: Vec<Option<&str>> = plain.column(2).as_string::<i32>().iter().collect();
        assert_eq!(
            extra,
            [
                Some(r#"{"z":{"a":[1,2]}}"#),
                None,
                Some(r#"{"w":"first","v":null}"#),
                Some(r#"{"z":1.50}"#)
            ]
        );
        let nested = plain.column(1).as_struct().column(1).as_string::<i32>();
        assert_eq!(nested.value(0), r#"{"y":"x y"}"#);
        assert_eq!(nested.value(2), r#"{"y":"a\"b"}"#);
        let whole = both_ways(r#"{"type": "object"}"#, &records);
        assert_eq!(whole.0, whole.1);
        let kept: Vec<Option<&str>> = whole.0.column(0).as_string::<i32>().iter().collect();
        assert_eq!(kept[1], Some(r#"{"id":2}"#));
        assert_eq!(
            kept[2],
            Some(r#"{"w":"first","id":3,"v":null,"o":{"y":"a\"b"}}"#)
        );
    }

    #[test]
    fn rows_taken_from_twins_equal_rows_decoded_in_place() {
        let schema = r#"{"properties": {
            "id": {"type": "integer"}, "x": {"type": ["null", "number"]}, "ok": {"type": ["null", "boolean"]},
            "s": {"type": ["null", "string"]}, "ts": {"type": "string", "format": "date-time"},
            "d": {"type": "string", "format": "date"}, "price": {"type": "number", "multipleOf": 0.01},
            "big": {"type": "number", "multipleOf": 1e-40},
            "l": {"type": ["null", "array"], "items": {"type": "object", "properties": {
                "k": {"type": "string"}, "n": {"type": "array", "items": {"type": "integer"}}}}},
            "o": {"type": ["null", "object"], "properties": {"a": {"type": "integer"}, "b": {"type": "array", "items": {"type": "string"}}}}}}"#;
        let records: Vec<String> = (0..300)
            .map(|i| match i % 4 {
                0 => format!(r#"{{"id": {i}, "x": {i}.5, "ok": true, "s": "text {i}", "ts": "2024-01-02T03:04:05Z", "d": "2024-02-29", "price": {i}.25, "big": 1.5, "l": [{{"k": "a{i}", "n": [1, {i}]}}, {{"k": "", "n": []}}], "o": {{"a": {i}, "b": ["p", "q{i}"]}}}}"#),
                1 => format!(r#"{{"id": {i}, "x": null, "ok": null, "s": null, "l": null, "o": null}}"#),
                2 => format!(r#"{{"id": {i}, "ok": false, "s": "", "l": [], "o": {{"b": []}}}}"#),
                _ => format!(r#"{{"id": {i}, "s": "héllo {i}", "l": [{{"k": "z", "n": null}}], "o": {{"a": null, "b": null}}}}"#),
            })
            .collect();
        let decode = |b: &mut Batch, record: &str, line: usize| {
            assert!(b.decode_plain(&mut Scanner::new(record)), "{record}");
            b.end_row(true, line as u64, record.len(), NONE).unwrap();
        };
        let mut in_place = batch(schema, &[]);
        for (line, record) in records.iter().enumerate() {
            decode(&mut in_place, record, line);
        }
        // The same records: some decoded here, the rest by a twin and taken over in
        // cuts of every size, the twin reused after each block.
        let mut taken = batch(schema, &[]);
        let mut twin = taken.twin();
        let mut line = 0;
        for block in [7usize, 1, 50, 0, 92, 150] {
            for _ in 0..block / 3 {
                decode(&mut taken, &records[line], line);
                line += 1;
            }
            let first = line;
            for _ in block / 3..block {
                decode(&mut twin, &records[line], line);
                line += 1;
            }
            let mut at = 0usize;
            for cut in [1, 0, 5, usize::MAX] {
                let end = at.saturating_add(cut).min(twin.rows());
                let bytes = records[first + at..first + end]
                    .iter()
                    .map(String::len)
                    .sum();
                taken
                    .take_rows(&twin, at..end, (first + at) as u64, bytes)
                    .unwrap();
                at = end;
            }
            twin.reset_twin(&taken.blueprint());
        }
        assert_eq!(line, records.len());
        assert_eq!(
            (taken.rows(), taken.bytes()),
            (in_place.rows(), in_place.bytes())
        );
        assert_eq!(taken.first_line(), Some(0));
        assert_eq!(taken.finish().unwrap(), in_place.finish().unwrap());
    }

    #[test]
    fn portable_columns_are_checked_as_their_type_and_stored_as_csv_text() {
        let schema = r#"{"properties": {"t": {"type": ["null", "string"], "format": "time"},
            "w": {"type": ["null", "number"], "multipleOf": 0.01, "maximum": 1e60},
            "l": {"type": "array", "items": {"type": "string", "format": "time"}}}}"#;
        let types = TypeOptions {
            portable_types: true,
            ..TypeOptions::default()
        };
        let schema = StreamSchema::from_json("s", schema, &[], &types).unwrap();
        let mut b = Batch::new(Arc::new(schema), DecodeOptions::default());
        b.append(r#"{"t": "12:30:00.5", "w": 0, "l": ["06:00:00"]}"#, 1, NONE)
            .unwrap();
        b.append(
            r#"{"t": null, "w": -999999999999999999999999999999999999999999.99, "l": []}"#,
            2,
            NONE,
        )
        .unwrap();
        let e = b
            .append(r#"{"t": "25:00:00", "w": 1}"#, 3, NONE)
            .unwrap_err();
        assert!(e.contains("HH:MM:SS"), "{e}");
        let rb = b.finish().unwrap();
        let t = rb.column(0).as_string::<i32>();
        assert_eq!((t.value(0), t.is_null(1)), ("12:30:00.500000", true));
        let w = rb.column(1).as_string::<i32>();
        assert_eq!(w.value(0), "0.00");
        assert_eq!(w.value(1), "-999999999999999999999999999999999999999999.99");
        let l = rb.column(2).as_list::<i32>().value(0);
        assert_eq!(l.as_string::<i32>().value(0), "06:00:00");
    }

    #[test]
    fn decodes_every_column_type() {
        let mut b = batch(SCHEMA, &["id"]);
        let record = r#"{"id": 7, "x": 1.5, "ok": true, "s": "a\"b", "ts": "2024-01-02T03:04:05.123456+01:00",
            "d": "0001-01-01", "t": "23:59:59.5", "j": {"k": [1, 2]}, "price": 12345678901234567.89,
            "o": {"b": ["p", "q"], "a": 3, "zz": 1}, "extra": 1}"#;
        b.append(record, 3, NONE).unwrap();
        b.append(r#"{"id": 8, "o": null}"#, 4, NONE).unwrap();
        assert_eq!(b.take_newly_ignored(), ["o.zz", "extra"]);
        assert_eq!(b.first_line(), Some(3));
        let rb = b.finish().unwrap();
        assert_eq!(rb.num_rows(), 2);
        assert_eq!(rb.column(0).as_primitive::<Int64Type>().value(0), 7);
        assert_eq!(rb.column(1).as_primitive::<Float64Type>().value(0), 1.5);
        assert!(rb.column(1).is_null(1));
        assert_eq!(rb.column(3).as_string::<i32>().value(0), "a\"b");
        let ts = rb.column(4).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(ts.value(0), 1_704_161_045_123_456);
        assert_eq!(rb.column(5).as_primitive::<Date32Type>().value(0), -719_162);
        let t = rb.column(6).as_primitive::<Time64MicrosecondType>();
        assert_eq!(t.value(0), 86_399_500_000);
        assert_eq!(rb.column(7).as_string::<i32>().value(0), r#"{"k":[1,2]}"#);
        let price = rb.column(8).as_primitive::<Decimal128Type>();
        assert_eq!(price.value(0), 1_234_567_890_123_456_789);
        let o = rb.column(9).as_struct();
        assert_eq!(o.column(0).as_primitive::<Int64Type>().value(0), 3);
        let list = o.column(1).as_list::<i32>().value(0);
        assert_eq!(list.as_string::<i32>().value(1), "q");
        assert!(o.is_null(1));
        assert_eq!(b.rows(), 0);
    }

    #[test]
    fn refuses_values_that_do_not_fit_and_keeps_the_buffer_whole() {
        let mut b = batch(SCHEMA, &["id"]);
        b.append(r#"{"id": 1, "o": {"b": ["kept"]}}"#, 1, NONE)
            .unwrap();
        let cases = [
            (
                r#"{"id": 1.5}"#,
                r#"field "id": expected an integer within int64, got the number 1.5"#,
            ),
            (
                r#"{"id": "42"}"#,
                r#"field "id": expected an integer within int64, got the string "42" ("validate_records": false takes strings that hold numbers or booleans into such columns)"#,
            ),
            (
                r#"{"id": 1, "x": 9007199254740993}"#,
                "cannot be held exactly",
            ),
            (r#"{"id": 18446744073709551615}"#, "beyond int64"),
            (
                r#"{"id": 1, "ok": "yes"}"#,
                "expected true or false, got the string \"yes\"",
            ),
            (
                r#"{"id": 1, "ok": "true"}"#,
                "(\"validate_records\": false takes strings",
            ),
            (r#"{"id": 1, "s": {"a": 1}}"#, "got an object"),
            (r#"{"id": 1, "ts": "yesterday"}"#, "RFC 3339"),
            (
                r#"{"id": 1, "ts": "2024-01-01T00:00:00.0000001Z"}"#,
                "timestamp_unit",
            ),
            (r#"{"id": 1, "d": "2024-01-01T10:00:00Z"}"#, "time of day"),
            (r#"{"id": 1, "price": 1.001}"#, "after the point"),
            (
                r#"{"id": 1, "o": {"b": ["fine", 7]}}"#,
                r#"field "o.b[]": expected a string, got the number 7"#,
            ),
            (
                r#"{"id": 1, "o": {"a": 1, "a": 2}}"#,
                r#""o.a" appears twice"#,
            ),
            (r#"{"id": 1, "id": 2}"#, "appears twice"),
            (r#"{"x": 1}"#, "key property \"id\""),
            (r#"{"id": null}"#, "key property \"id\""),
        ];
        for (record, expected) in cases {
            let e = b.append(record, 2, NONE).unwrap_err();
            assert!(e.contains(expected), "{record}: {e}");
        }
        assert_eq!(b.rows(), 1);
        b.append(r#"{"id": 2, "o": {"b": []}}"#, 3, NONE).unwrap();
        let rb = b.finish().unwrap();
        assert_eq!(rb.num_rows(), 2);
        let lists = rb.column(9).as_struct().column(1).as_list::<i32>();
        assert_eq!(lists.value(0).len(), 1);
        assert_eq!(lists.value(1).len(), 0);
    }

    #[test]
    fn lenient_mode_takes_strings_of_numbers_and_any_value_as_text() {
        let options = DecodeOptions {
            lenient: true,
            ..DecodeOptions::default()
        };
        let mut b = batch_with(SCHEMA, &[], options);
        b.append(
            r#"{"id": "42", "ok": "true", "s": 12.50, "price": "3.5"}"#,
            1,
            NONE,
        )
        .unwrap();
        let rb = b.finish().unwrap();
        assert_eq!(rb.column(0).as_primitive::<Int64Type>().value(0), 42);
        assert!(rb.column(2).as_boolean().value(0));
        assert_eq!(rb.column(3).as_string::<i32>().value(0), "12.50");
        assert_eq!(rb.column(8).as_primitive::<Decimal128Type>().value(0), 350);
    }

    #[test]
    fn inexact_numbers_can_be_counted_instead() {
        let options = DecodeOptions {
            inexact_numbers: InexactNumbers::Warn,
            ..DecodeOptions::default()
        };
        let mut b = batch_with(SCHEMA, &[], options);
        b.append(r#"{"x": 1000000000000000000000000000001}"#, 1, NONE)
            .unwrap();
        b.append(r#"{"x": 0.1}"#, 2, NONE).unwrap();
        assert_eq!(b.take_rounded(), [("x".to_owned(), 1)]);
        assert_eq!(
            b.finish()
                .unwrap()
                .column(1)
                .as_primitive::<Float64Type>()
                .value(0),
            1e30
        );
    }

    #[test]
    fn unknown_fields_can_be_refused() {
        let options = DecodeOptions {
            refuse_unknown_fields: true,
            ..DecodeOptions::default()
        };
        let mut b = batch_with(SCHEMA, &[], options);
        let e = b.append(r#"{"o": {"new": 1}}"#, 1, NONE).unwrap_err();
        assert!(e.contains(r#""o.new" is not in the schema"#), "{e}");
    }

    #[test]
    fn mage_columns_hold_the_time_of_the_chunk_and_leave_the_stream_splittable() {
        let schema = r#"{"properties": {"id": {"type": "integer"}}}"#;
        let types = TypeOptions {
            mage_columns: true,
            ..TypeOptions::default()
        };
        let schema = StreamSchema::from_json("s", schema, &[], &types).unwrap();
        let mut b = Batch::new(Arc::new(schema), DecodeOptions::default());
        assert!(b.splittable(), "no per-row state beside the record");
        b.append(r#"{"id": 1}"#, 1, NONE).unwrap();
        b.append(r#"{"id": 2}"#, 2, NONE).unwrap();
        let rb = b.finish().unwrap();
        assert_eq!(rb.num_columns(), 3);
        let micros = |i: usize| rb.column(i).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(micros(1).null_count(), 0);
        assert_eq!(micros(1).value(0), micros(2).value(1));
        assert!(micros(1).value(0) > 1_700_000_000_000_000);
    }

    #[test]
    fn metadata_columns_come_after_the_record_and_from_the_envelope() {
        let schema = r#"{"properties": {"id": {"type": "integer"},
            "_sdc_received_at": {"type": "string"}}}"#;
        let types = TypeOptions {
            metadata_columns: true,
            ..TypeOptions::default()
        };
        let schema = StreamSchema::from_json("s", schema, &["id".into()], &types).unwrap();
        let options = DecodeOptions {
            refuse_unknown_fields: true,
            ..DecodeOptions::default()
        };
        let mut b = Batch::new(Arc::new(schema), options);
        let envelope = Envelope {
            time_extracted: Some(r#""2024-01-02T03:04:05Z""#),
            table_version: Some(5),
        };
        let deleted =
            r#"{"id": 1, "_sdc_deleted_at": "2024-01-01T00:00:00Z", "_sdc_received_at": "x"}"#;
        b.append(deleted, 1, &envelope).unwrap();
        b.append(r#"{"id": 2}"#, 2, NONE).unwrap();
        let e = b.append(r#"{"id": 3, "_sdc_deleted_at": "soon"}"#, 3, NONE);
        assert!(e.unwrap_err().contains(r#"field "_sdc_deleted_at""#));
        let envelope = Envelope {
            time_extracted: Some("false"),
            table_version: None,
        };
        let e = b.append(r#"{"id": 4}"#, 4, &envelope).unwrap_err();
        assert!(e.contains("time_extracted"), "{e}");
        let e = b
            .append(r#"{"_sdc_deleted_at": null}"#, 5, NONE)
            .unwrap_err();
        assert!(e.contains("key property"), "{e}");
        assert_eq!(b.rows(), 2);
        let rb = b.finish().unwrap();
        assert_eq!(rb.num_columns(), 7);
        assert_eq!(rb.num_rows(), 2);
        let micros = |i: usize| rb.column(i).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(micros(1).value(0), 1_704_164_645_000_000);
        assert!(micros(1).is_null(1));
        assert_eq!(micros(4).value(0), 1_704_067_200_000_000);
        assert!(micros(4).is_null(1));
        assert!(micros(3).value(1) >= micros(2).value(1));
        let sequence = rb.column(5).as_primitive::<Int64Type>();
        assert!(sequence.value(1) > sequence.value(0));
        let versions = rb.column(6).as_primitive::<Int64Type>();
        assert_eq!(versions.iter().collect::<Vec<_>>(), [Some(5), None]);
        b.append(r#"{"id": 6}"#, 6, NONE).unwrap();
        assert_eq!(b.finish().unwrap().num_rows(), 1);
    }

    #[test]
    fn flattened_objects_are_handed_out_as_columns() {
        let schema = r#"{"properties": {"id": {"type": "integer"},
            "a": {"type": ["object", "null"], "properties": {"b": {"type": "string"},
                "c": {"type": "object", "properties": {"d": {"type": "integer"}}}}}}}"#;
        let options = TypeOptions {
            flatten_max_depth: 1,
            ..TypeOptions::default()
        };
        let schema = StreamSchema::from_json("s", schema, &["id".into()], &options).unwrap();
        let mut b = Batch::new(Arc::new(schema), DecodeOptions::default());
        b.append(r#"{"id": 1, "a": {"b": "x", "c": {"d": 4}}}"#, 1, NONE)
            .unwrap();
        b.append(r#"{"id": 2, "a": null}"#, 2, NONE).unwrap();
        b.append(r#"{"id": 3, "a": {"c": null}}"#, 3, NONE).unwrap();
        let e = b
            .append(r#"{"id": 4, "a": {"b": 5}}"#, 4, NONE)
            .unwrap_err();
        assert!(e.contains(r#"field "a.b""#), "{e}");
        let rb = b.finish().unwrap();
        assert_eq!(rb.num_columns(), 3);
        let names: Vec<_> = rb
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["id", "a__b", "a__c"]);
        let ab = rb.column(1).as_string::<i32>();
        assert_eq!(ab.value(0), "x");
        assert!(ab.is_null(1) && ab.is_null(2));
        let ac = rb.column(2).as_struct();
        assert_eq!(ac.column(0).as_primitive::<Int64Type>().value(0), 4);
        assert!(ac.is_null(1) && ac.is_null(2));
        b.append(r#"{"id": 5, "a": {"b": "again"}}"#, 5, NONE)
            .unwrap();
        let rb = b.finish().unwrap();
        assert_eq!(rb.column(1).as_string::<i32>().value(0), "again");
        assert!(rb.column(1).nulls().is_none());
    }

    /// Buffers of one schema (two streams', and a twin) share one template, start
    /// parked, and are made again, skipping what they skipped, after being parked.
    #[test]
    fn buffers_of_one_schema_share_a_template() {
        let schema = StreamSchema::from_json("s", SCHEMA, &["id".into()], &TypeOptions::default());
        let schema = Arc::new(schema.unwrap());
        let mut other = (*schema).clone();
        other.stream = "t".into();
        let mut templates = Templates::default();
        let mut a = templates.batch(schema, DecodeOptions::default());
        let b = templates.batch(Arc::new(other), DecodeOptions::default());
        assert!(Arc::ptr_eq(&a.template, &b.template));
        assert!(
            a.columns.is_none() && b.columns.is_none(),
            "parked until a record"
        );
        a.append(
            r#"{"id": 1, "s": "x", "extra": 1, "o": {"a": 2, "z": 3}}"#,
            1,
            NONE,
        )
        .unwrap();
        assert_eq!(a.take_newly_ignored(), ["extra", "o.z"]);
        let twin = a.twin();
        assert!(Arc::ptr_eq(&a.template, &twin.template));
        let rb = a.finish().unwrap();
        assert_eq!(rb.column(0).as_primitive::<Int64Type>().value(0), 1);
        a.park();
        assert!(a.columns.is_none());
        a.append(r#"{"id": 2, "s": "y", "extra": 1, "o": {"z": 3}}"#, 2, NONE)
            .unwrap();
        assert!(a.take_newly_ignored().is_empty(), "warned about once");
        let e = a.append(r#"{"s": "y"}"#, 3, NONE).unwrap_err();
        assert!(e.contains("key property \"id\""), "{e}");
        let rb = a.finish().unwrap();
        assert_eq!(rb.num_rows(), 1);
        assert_eq!(rb.column(3).as_string::<i32>().value(0), "y");
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let mut b = batch(SCHEMA, &[]);
        let long = "z".repeat(500);
        let e = b
            .append(&format!(r#"{{"id": "{long}"}}"#), 1, NONE)
            .unwrap_err();
        assert!(e.len() < 150 && e.contains('…'), "{e}");
    }

    /// A refused value's message suggests the setting that takes it, as JSON to paste,
    /// for this stream and column and a type that holds the value.
    #[test]
    fn suggestions_fit_the_value_and_paste_as_json() {
        let schema = r#"{"properties": {"big": {"type": "number"}, "n": {"type": "integer"},
            "ts": {"type": "string", "format": "date-time"}, "t": {"type": "string", "format": "time"},
            "o": {"type": "object", "properties": {"x": {"type": "number"}}},
            "f": {"type": "object", "properties": {"y": {"type": "number"}}}}}"#;
        let mut types = TypeOptions {
            flatten_max_depth: 0,
            ..TypeOptions::default()
        };
        let refused = |types: &TypeOptions, record: &str| {
            let stream = StreamSchema::from_json("public-orders", schema, &[], types).unwrap();
            let mut b = Batch::new(Arc::new(stream), DecodeOptions::default());
            b.append(record, 1, NONE).unwrap_err()
        };
        let cases = [
            (
                r#"{"big": 1000000000000000000000000000001}"#,
                r#"set "column_types": {"public-orders": {"big": "decimal(38,0)"}} to store it exactly, or "inexact_numbers": "warn" to store the nearest float64"#,
            ),
            (
                r#"{"big": 12345678901234567.891}"#,
                r#""column_types": {"public-orders": {"big": "decimal(38,3)"}}"#,
            ),
            (
                r#"{"big": 1000000000000000000000000000000000000000000001}"#,
                r#""column_types": {"public-orders": {"big": "decimal(46,0)"}}"#,
            ),
            (
                r#"{"n": 18446744073709551615}"#,
                r#"beyond int64; set "column_types": {"public-orders": {"n": "decimal(38,0)"}} to keep it"#,
            ),
            (
                r#"{"ts": "2024-01-01T00:00:00.123456789Z"}"#,
                r#"set "timestamp_unit": "ns" to keep them (CSV, JSONL, or Parquet with "parquet_compatibility": "arrow"), or "column_types": {"public-orders": {"ts": "string"}} to keep them as text"#,
            ),
            (
                r#"{"ts": "2024-01-01T00:00:00.1234567891Z"}"#,
                r#"set "column_types": {"public-orders": {"ts": "string"}} to keep them as text"#,
            ),
            (
                r#"{"t": "24:00:00"}"#,
                r#"set "column_types": {"public-orders": {"t": "string"}} to keep it as text"#,
            ),
            (
                r#"{"t": "10:00:00.1234567"}"#,
                r#"set "column_types": {"public-orders": {"t": "string"}} to keep them as text"#,
            ),
            // Inside a struct that is not flattened only the whole column is reached.
            (
                r#"{"o": {"x": 1000000000000000000000000000001}}"#,
                r#""column_types": {"public-orders": {"o": "json"}}"#,
            ),
        ];
        for (record, words) in cases {
            let e = refused(&types, record);
            assert!(e.contains(words), "{record}: {e}");
        }
        types.flatten_max_depth = 1;
        let e = refused(&types, r#"{"f": {"y": 1000000000000000000000000000001}}"#);
        assert!(
            e.contains(r#""column_types": {"public-orders": {"f__y": "decimal(38,0)"}}"#),
            "{e}"
        );
        types.timestamp_unit = TimeUnit::Millisecond;
        let e = refused(&types, r#"{"ts": "2024-01-01T00:00:00.123456Z"}"#);
        assert!(
            e.contains(r#"set "timestamp_unit": "us" to keep them"#),
            "{e}"
        );
    }

    /// What the suggestions say works: the suggested type takes the value.
    #[test]
    fn suggested_types_take_the_values() {
        let schema = r#"{"properties": {"big": {"type": "number"}}}"#;
        for value in [
            "1000000000000000000000000000001",
            "12345678901234567.891",
            "1e45",
            "-0.000000000000000000001",
        ] {
            let ty = values::exact_type(value);
            let mut types = TypeOptions::default();
            let parsed = crate::schema::parse_type_name(&ty).unwrap();
            types
                .overrides
                .insert("s".into(), [("big".to_owned(), parsed)].into());
            let stream = StreamSchema::from_json("s", schema, &[], &types).unwrap();
            let mut b = Batch::new(Arc::new(stream), DecodeOptions::default());
            b.append(&format!(r#"{{"big": {value}}}"#), 1, NONE)
                .unwrap_or_else(|e| panic!("{value} as {ty}: {e}"));
        }
    }
}
