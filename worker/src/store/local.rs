//! The local directory store: each output a file under one directory, written to a temporary
//! name and renamed into place.

use super::{ResultStore, SpeechOutput};
use crate::audio::pipeline::SpeechWriter;
use crate::audio::wav;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use vadflow_common::{Failure, Reason};

/// Writes outputs as files under one directory, each atomically.
#[derive(Debug)]
pub struct DirStore {
    pub dir: PathBuf,
}

/// `dir/.name.part`: where `dir/name` is written before its rename.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.part"))
}

fn io_failure(what: &str, path: &Path, e: std::io::Error) -> Failure {
    Failure::new(Reason::Internal, format!("{what} {}: {e}", path.display()))
}

impl ResultStore for DirStore {
    fn put(
        &mut self,
        name: &str,
        _content_type: &'static str,
        bytes: Vec<u8>,
    ) -> Result<(), Failure> {
        let path = self.dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_failure("create", parent, e))?;
        }
        let tmp = temp_path(&path);
        std::fs::write(&tmp, &bytes).map_err(|e| io_failure("write", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io_failure("rename", &path, e))
    }

    fn speech(&mut self, rate: u32) -> Result<Box<dyn SpeechOutput>, Failure> {
        std::fs::create_dir_all(&self.dir).map_err(|e| io_failure("create", &self.dir, e))?;
        let path = self.dir.join(crate::audio::render::SPEECH_WAV);
        let tmp = temp_path(&path);
        let file = File::create(&tmp).map_err(|e| io_failure("create", &tmp, e))?;
        let mut out = BufWriter::new(file);
        out.write_all(&wav::header(rate, 0))
            .map_err(|e| io_failure("write", &tmp, e))?;
        Ok(Box::new(FileSpeech {
            out,
            tmp,
            path,
            rate,
            samples: 0,
            buf: Vec::new(),
        }))
    }
}

struct FileSpeech {
    out: BufWriter<File>,
    tmp: PathBuf,
    path: PathBuf,
    rate: u32,
    samples: u64,
    buf: Vec<u8>,
}

impl SpeechWriter for FileSpeech {
    fn write(&mut self, samples: &[i16]) -> Result<(), Failure> {
        self.samples += samples.len() as u64;
        self.buf.clear();
        wav::extend_pcm(&mut self.buf, samples);
        self.out
            .write_all(&self.buf)
            .map_err(|e| io_failure("write", &self.tmp, e))
    }
}

impl SpeechOutput for FileSpeech {
    fn finish(mut self: Box<Self>) -> Result<(), Failure> {
        let header = wav::header(self.rate, self.samples);
        let tmp = self.tmp.clone();
        let res = (|| {
            self.out.seek(SeekFrom::Start(0))?;
            self.out.write_all(&header)?;
            self.out.flush()
        })();
        res.map_err(|e| io_failure("write", &tmp, e))?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| io_failure("rename", &self.path, e))
    }

    fn abort(self: Box<Self>) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}
