//! A snapshot that replaces a table's rows (`load_method: overwrite`, ACTIVATE_VERSION):
//! the run's data files become the table's only live files, in one commit, so a
//! reader sees the old rows or the new ones, never both, never none.
//!
//! The library (0.10) builds append snapshots only, so this writes one with its public
//! writers: a manifest of the added files, for every manifest of the current snapshot
//! with live entries one that marks them deleted (so snapshot expiry and incremental
//! readers know what left), a manifest list, and the snapshot (operation `overwrite`,
//! summary totals that count only the new files). What comes out is a commit's
//! requirements and updates, the same shape the library's transactions hand a
//! catalog; `commit` sends them.
//!
//! Owns: those files and the commit's content. Must not touch: which files a run
//! wrote (`Tables`), how a catalog takes a commit (`commit`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use iceberg::spec::{
    DataFile, FormatVersion, MAIN_BRANCH, ManifestContentType, ManifestFile, ManifestListWriter,
    ManifestWriter, ManifestWriterBuilder, Operation, PartitionSpec, SchemaRef, Snapshot,
    SnapshotReference, SnapshotRetention, SnapshotSummaryCollector, Summary,
};
use iceberg::table::Table;
use iceberg::{Error, ErrorKind, Result, TableRequirement, TableUpdate};

/// A commit's two halves, as the catalogs' APIs take them.
pub struct Changes {
    pub requirements: Vec<TableRequirement>,
    pub updates: Vec<TableUpdate>,
}

/// The commit that makes `files` the table's only rows, on the table as it is now;
/// `properties` join the snapshot's summary.
pub async fn replacement(
    table: &Table,
    files: Vec<DataFile>,
    properties: HashMap<String, String>,
) -> Result<Changes> {
    let metadata = table.metadata();
    if metadata.format_version() != FormatVersion::V2 {
        return Err(Error::new(
            ErrorKind::FeatureUnsupported,
            format!(
                "replacing the rows of a format version {} table (only version 2 tables, which target-s3 makes, can be replaced)",
                metadata.format_version()
            ),
        ));
    }
    let writer = Writer::new(table);
    let mut summary = SnapshotSummaryCollector::default();
    let mut manifests = Vec::new();
    if !files.is_empty() {
        manifests.push(writer.added(&files, &mut summary).await?);
    }
    manifests.extend(writer.deleted(&mut summary).await?);
    let list = writer.manifest_list(manifests).await?;
    let snapshot = writer.snapshot(list, summary, properties);
    let parent = metadata.current_snapshot_id();
    Ok(Changes {
        requirements: vec![
            TableRequirement::UuidMatch {
                uuid: metadata.uuid(),
            },
            TableRequirement::RefSnapshotIdMatch {
                r#ref: MAIN_BRANCH.to_owned(),
                snapshot_id: parent,
            },
        ],
        updates: vec![
            TableUpdate::AddSnapshot { snapshot },
            TableUpdate::SetSnapshotRef {
                ref_name: MAIN_BRANCH.to_owned(),
                reference: SnapshotReference::new(
                    writer.snapshot_id,
                    SnapshotRetention::branch(None, None, None),
                ),
            },
        ],
    })
}

/// The files of one new snapshot of `table`.
struct Writer<'t> {
    table: &'t Table,
    snapshot_id: i64,
    sequence_number: i64,
    /// Names this commit's files apart from every other commit's.
    commit: String,
    manifests: AtomicU32,
}

impl<'t> Writer<'t> {
    fn new(table: &'t Table) -> Writer<'t> {
        let metadata = table.metadata();
        Writer {
            table,
            snapshot_id: new_snapshot_id(table),
            sequence_number: metadata.next_sequence_number(),
            commit: uuid_text(),
            manifests: AtomicU32::new(0),
        }
    }

    fn metadata_path(&self, name: &str) -> String {
        let location = self.table.metadata().location().trim_end_matches('/');
        format!("{location}/metadata/{name}")
    }

    fn manifest_writer(
        &self,
        content: ManifestContentType,
        schema: SchemaRef,
        spec: PartitionSpec,
    ) -> Result<ManifestWriter> {
        let number = self.manifests.fetch_add(1, Ordering::Relaxed);
        let path = self.metadata_path(&format!("{}-m{number}.avro", self.commit));
        let output = self.table.file_io().new_output(path)?;
        let builder = ManifestWriterBuilder::new(output, Some(self.snapshot_id), schema, spec);
        Ok(match content {
            ManifestContentType::Data => builder.build_v2_data(),
            ManifestContentType::Deletes => builder.build_v2_deletes(),
        })
    }

    /// The manifest of the run's files.
    async fn added(
        &self,
        files: &[DataFile],
        summary: &mut SnapshotSummaryCollector,
    ) -> Result<ManifestFile> {
        let metadata = self.table.metadata();
        let (schema, spec) = (metadata.current_schema(), metadata.default_partition_spec());
        let mut writer =
            self.manifest_writer(ManifestContentType::Data, schema.clone(), (**spec).clone())?;
        for file in files {
            summary.add_file(file, schema.clone(), spec.clone());
            writer.add_file(file.clone(), self.sequence_number)?;
        }
        writer.write_manifest_file().await
    }

    /// For each manifest of the current snapshot with live entries, one with those
    /// entries marked deleted (data and delete files alike: nothing of the old rows
    /// stays live).
    async fn deleted(&self, summary: &mut SnapshotSummaryCollector) -> Result<Vec<ManifestFile>> {
        let Some(current) = self.table.metadata().current_snapshot() else {
            return Ok(Vec::new());
        };
        let file_io = self.table.file_io();
        let list = self.table.manifest_list_reader(current).load().await?;
        let mut written = Vec::new();
        for old in list.entries() {
            let manifest = old.load_manifest(file_io).await?;
            let live: Vec<_> = manifest.entries().iter().filter(|e| e.is_alive()).collect();
            if live.is_empty() {
                continue;
            }
            let meta = manifest.metadata();
            let spec = Arc::new(meta.partition_spec().clone());
            let mut writer = self.manifest_writer(
                *meta.content(),
                meta.schema().clone(),
                meta.partition_spec().clone(),
            )?;
            for entry in live {
                let file = entry.data_file().clone();
                summary.remove_file(&file, meta.schema().clone(), spec.clone());
                // Entries that inherit their sequence numbers take their manifest's.
                let sequence = entry.sequence_number().unwrap_or(old.sequence_number);
                let file_sequence = entry.file_sequence_number.or(Some(old.sequence_number));
                writer.add_delete_file(file, sequence, file_sequence)?;
            }
            written.push(writer.write_manifest_file().await?);
        }
        Ok(written)
    }

    async fn manifest_list(&self, manifests: Vec<ManifestFile>) -> Result<String> {
        let name = format!("snap-{}-0-{}.avro", self.snapshot_id, self.commit);
        let path = self.metadata_path(&name);
        let output = self.table.file_io().new_output(&path)?.writer().await?;
        let parent = self.table.metadata().current_snapshot_id();
        let mut list =
            ManifestListWriter::v2(output, self.snapshot_id, parent, self.sequence_number);
        list.add_manifests(manifests.into_iter())?;
        list.close().await?;
        Ok(path)
    }

    fn snapshot(
        &self,
        manifest_list: String,
        summary: SnapshotSummaryCollector,
        properties: HashMap<String, String>,
    ) -> Snapshot {
        let metadata = self.table.metadata();
        let mut fields = properties;
        let counts = summary.build();
        fields.extend(totals(&counts));
        fields.extend(counts);
        Snapshot::builder()
            .with_snapshot_id(self.snapshot_id)
            .with_parent_snapshot_id(metadata.current_snapshot_id())
            .with_sequence_number(self.sequence_number)
            .with_timestamp_ms(chrono::Utc::now().timestamp_millis())
            .with_manifest_list(manifest_list)
            .with_summary(Summary {
                operation: Operation::Overwrite,
                additional_properties: fields,
            })
            .with_schema_id(metadata.current_schema_id())
            .build()
    }
}

/// After a replacement the table holds only what it added: every total is the added
/// figure, and there are no delete files left.
fn totals(counts: &HashMap<String, String>) -> Vec<(String, String)> {
    let added = |key: &str| counts.get(key).cloned().unwrap_or_else(|| "0".into());
    vec![
        ("total-data-files".into(), added("added-data-files")),
        ("total-records".into(), added("added-records")),
        ("total-files-size".into(), added("added-files-size")),
        ("total-delete-files".into(), "0".into()),
        ("total-position-deletes".into(), "0".into()),
        ("total-equality-deletes".into(), "0".into()),
    ]
}

/// A positive snapshot id no snapshot of the table has, as the library makes them.
fn new_snapshot_id(table: &Table) -> i64 {
    loop {
        let (high, low) = uuid::Uuid::new_v4().as_u64_pair();
        let id = ((high ^ low) as i64).checked_abs().unwrap_or(1);
        if id != 0 && table.metadata().snapshot_by_id(id).is_none() {
            return id;
        }
    }
}

fn uuid_text() -> String {
    uuid::Uuid::new_v4().to_string()
}
