//! A local folder in place of a bucket (`aws_endpoint: file:///dir`): the object at
//! `<key>` is the file `<dir>/<bucket>/<key>`, the same layout as in S3, so a dry run
//! shows exactly what a real one would write, and the folder can be synced to a bucket.
//!
//! Owns: the files. An object is written into a hidden temporary file in its final
//! folder (`.<name>.partial`), flushed to disk, renamed into place, and the folder
//! synced: a reader sees no object or a whole one, and a STATE written after the
//! rename is covered by what survives a power cut. Must not touch: keys or state.
//! The folder given must exist, at start-up and for every object after (a folder that
//! vanished mid-run is an error, never silently made again); the bucket's folder and
//! those below are created. Every write error names the file.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

const TEMPORARY_SUFFIX: &str = ".partial";
/// Bytes gathered before a write reaches the file.
const WRITE_BUFFER: usize = 1 << 20;

#[derive(Clone, Debug)]
pub struct LocalStore {
    /// `<dir>`, the folder given.
    base: PathBuf,
    /// `<dir>/<bucket>`.
    root: PathBuf,
}

impl LocalStore {
    /// The store for `bucket` under `folder`, which must be an existing folder.
    pub fn open(folder: &Path, bucket: &str) -> Result<LocalStore> {
        if !folder.is_dir() {
            return Err(Error::Store(format!(
                "the local folder {} (aws_endpoint) does not exist or is not a folder; create it first",
                folder.display()
            )));
        }
        Ok(LocalStore {
            base: folder.to_owned(),
            root: folder.join(bucket),
        })
    }

    /// Where `key` lives. Keys with `.` or `..` segments are refused: in S3 they are
    /// plain names, here they would leave the bucket's folder.
    pub fn path(&self, key: &str) -> Result<PathBuf> {
        if key
            .split('/')
            .any(|s| s == "." || s == ".." || s.contains('\0'))
        {
            return Err(Error::Store(format!(
                "key {key:?} has a \".\" or \"..\" segment, which a local folder cannot hold as a name; check object_key_path and date_partition_format"
            )));
        }
        Ok(self.root.join(key.trim_matches('/')))
    }

    /// Starts the object at `key`: its temporary file, in the folder it will end in.
    pub fn begin(&self, key: &str) -> Result<LocalFile> {
        let path = self.path(key)?;
        if !self.base.is_dir() {
            return Err(Error::Store(format!(
                "the local folder {} (aws_endpoint) is gone: it was removed while the run wrote into it; {} was not written",
                self.base.display(),
                path.display()
            )));
        }
        let failed = |e: io::Error| Error::Store(format!("writing {} failed: {e}", path.display()));
        let folder = path.parent().unwrap_or(&self.root);
        fs::create_dir_all(folder).map_err(failed)?;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let temporary = folder.join(format!(".{name}{TEMPORARY_SUFFIX}"));
        let file = File::create(&temporary).map_err(failed)?;
        Ok(LocalFile {
            file: Some(BufWriter::with_capacity(WRITE_BUFFER, file)),
            temporary,
            path,
            bytes: 0,
        })
    }

    /// Stores a whole object; returns once it is on disk under its name.
    pub fn put(&self, key: &str, body: &[u8]) -> Result<()> {
        let mut file = self.begin(key)?;
        file.write_all(body)
            .map_err(|e| Error::Store(format!("writing {} failed: {e}", file.path.display())))?;
        file.commit().map(|_| ())
    }

    /// Start-up check: the bucket's folder and the prefix's can be made and written in.
    pub fn preflight(&self, prefix: &str) -> Result<()> {
        let probe = format!("{}/.target-s3-preflight", prefix.trim_matches('/'));
        let written = self.begin(&probe).and_then(|mut file| {
            file.write_all(b"preflight")
                .and_then(|()| file.flush())
                .map_err(|e| Error::Store(e.to_string()))
        });
        written.map_err(|e| {
            Error::Store(format!(
                "preflight: cannot write in the local folder {}: {e} (set preflight to false to skip this check)",
                self.root.display()
            ))
        })
    }

    /// Every object whose key starts with `prefix`, a folder (ending in `/`) or empty.
    /// Temporary files and anything that is not a plain file (links, sockets) are not
    /// objects and are left out.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        let folder = self.path(prefix)?;
        let start = prefix.trim_matches('/');
        match walk(&folder, start, &mut keys) {
            Ok(()) => Ok(keys),
            Err(e) => Err(Error::Store(format!(
                "listing {} failed: {e}",
                folder.display()
            ))),
        }
    }

    /// Deletes the objects (a missing one counts as deleted), then the folders left
    /// empty below the bucket's.
    pub fn delete(&self, keys: &[String]) -> Result<()> {
        for key in keys {
            let path = self.path(key)?;
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::Store(format!(
                        "deleting {} failed: {e}",
                        path.display()
                    )));
                }
            }
            let mut folder = path.parent();
            while let Some(dir) = folder.filter(|d| d.starts_with(&self.root) && *d != self.root) {
                if fs::remove_dir(dir).is_err() {
                    break;
                }
                folder = dir.parent();
            }
        }
        Ok(())
    }
}

/// Adds the keys of the plain files under `folder` (whose key is `key`) to `keys`.
fn walk(folder: &Path, key: &str, keys: &mut Vec<String>) -> io::Result<()> {
    let entries = match fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue; // not UTF-8: no key of ours
        };
        let child = if key.is_empty() {
            name.clone()
        } else {
            format!("{key}/{name}")
        };
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&entry.path(), &child, keys)?;
        } else if kind.is_file() && !is_temporary(&name) {
            keys.push(child);
        }
    }
    Ok(())
}

fn is_temporary(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(TEMPORARY_SUFFIX)
}

/// An object being written: its temporary file until `commit` renames it into place.
/// Dropped uncommitted, the temporary file is removed.
pub struct LocalFile {
    file: Option<BufWriter<File>>,
    temporary: PathBuf,
    path: PathBuf,
    bytes: u64,
}

impl LocalFile {
    /// Flushes and syncs the file, renames it to its key and syncs the folder; returns
    /// the object's size. Blocking: run it off the encoder thread.
    pub fn commit(mut self) -> Result<u64> {
        let Some(writer) = self.file.take() else {
            return Err(Error::Store(format!(
                "writing {} failed: abandoned",
                self.path.display()
            )));
        };
        match self.put_in_place(writer) {
            Ok(()) => Ok(self.bytes),
            Err(e) => {
                let _ = fs::remove_file(&self.temporary);
                Err(Error::Store(format!(
                    "writing {} failed: {e}",
                    self.path.display()
                )))
            }
        }
    }

    fn put_in_place(&self, writer: BufWriter<File>) -> io::Result<()> {
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&self.temporary, &self.path)?;
        match self.path.parent() {
            Some(folder) => File::open(folder)?.sync_all(),
            None => Ok(()),
        }
    }

    /// Gives the object up: the temporary file is removed, nothing else remains.
    pub fn abandon(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.temporary);
        }
    }
}

impl Drop for LocalFile {
    fn drop(&mut self) {
        self.abandon();
    }
}

impl Write for LocalFile {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("the object was abandoned"))?;
        let written = file.write(data).map_err(|e| naming(&self.path, e))?;
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        let flushed = self.file.as_mut().map_or(Ok(()), |f| f.flush());
        flushed.map_err(|e| naming(&self.path, e))
    }
}

/// A write error that says which file it was writing (a full disk, say).
fn naming(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("writing {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("target-s3-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn files_under(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                out.extend(files_under(&entry.path()));
            } else {
                out.push(entry.file_name().into_string().unwrap());
            }
        }
        out
    }

    #[test]
    fn objects_appear_whole_and_only_on_commit() {
        let dir = folder("commit");
        let store = LocalStore::open(&dir, "bucket").unwrap();
        let mut file = store.begin("p/t/2024/a.csv").unwrap();
        file.write_all(b"id\r\n1\r\n").unwrap();
        let path = dir.join("bucket/p/t/2024/a.csv");
        assert!(!path.exists(), "no object before commit");
        assert_eq!(file.commit().unwrap(), 7);
        assert_eq!(fs::read(&path).unwrap(), b"id\r\n1\r\n");
        assert_eq!(files_under(&dir), vec!["a.csv"], "no temporary file left");

        let mut dropped = store.begin("p/t/b.csv").unwrap();
        dropped.write_all(b"x").unwrap();
        drop(dropped);
        assert_eq!(files_under(&dir), vec!["a.csv"]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn lists_and_deletes_objects_under_a_folder_only() {
        let dir = folder("list");
        let store = LocalStore::open(&dir, "b").unwrap();
        for key in [
            "p/t/1.csv",
            "p/t/x/2.csv",
            "p/t2/3.csv",
            "p/t/_manifests/m.json",
        ] {
            store.put(key, b"data").unwrap();
        }
        let _open = store.begin("p/t/4.csv").unwrap();
        let mut listed = store.list("p/t/").unwrap();
        listed.sort();
        assert_eq!(
            listed,
            vec!["p/t/1.csv", "p/t/_manifests/m.json", "p/t/x/2.csv"]
        );
        store
            .delete(&["p/t/x/2.csv".into(), "p/t/gone.csv".into()])
            .unwrap();
        assert!(!dir.join("b/p/t/x").exists(), "an emptied folder goes too");
        assert!(dir.join("b/p/t2/3.csv").exists());
        assert_eq!(store.list("p/none/").unwrap(), Vec::<String>::new());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_full_disk_names_the_file() {
        let dir = folder("full");
        let full = File::options().write(true).open("/dev/full").unwrap();
        let mut file = LocalFile {
            file: Some(BufWriter::with_capacity(WRITE_BUFFER, full)),
            temporary: dir.join(".a.csv.partial"),
            path: dir.join("a.csv"),
            bytes: 0,
        };
        let e = file.write_all(&vec![b'x'; 2 * WRITE_BUFFER]).unwrap_err();
        assert_eq!(e.raw_os_error(), None, "wrapped, with the path");
        let text = e.to_string();
        assert!(
            text.contains("a.csv") && text.contains("No space left"),
            "{text}"
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_folder_removed_mid_run_is_not_made_again() {
        let dir = folder("vanished");
        let store = LocalStore::open(&dir, "b").unwrap();
        store.put("p/1.csv", b"x").unwrap();
        fs::remove_dir_all(&dir).unwrap();
        let e = store.begin("p/2.csv").err().unwrap().to_string();
        assert!(e.contains("is gone") && e.contains("2.csv"), "{e}");
        assert!(!dir.exists(), "not made again");
    }

    #[test]
    fn refuses_a_missing_folder_and_escaping_keys() {
        let missing = std::env::temp_dir().join("target-s3-no-such-folder-here");
        let e = LocalStore::open(&missing, "b").unwrap_err().to_string();
        assert!(e.contains("does not exist"), "{e}");
        let dir = folder("escape");
        let store = LocalStore::open(&dir, "b").unwrap();
        let e = store.put("p/../../x.csv", b"x").unwrap_err().to_string();
        assert!(e.contains("\"..\""), "{e}");
        store.preflight("p/q").unwrap();
        assert!(files_under(&dir).is_empty(), "the probe leaves nothing");
        fs::remove_dir_all(dir).unwrap();
    }
}
