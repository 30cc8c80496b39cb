//! NumPy `.npy` files for the script builtins `load` and `save`, hardened against hostile
//! files and failing disks.
//!
//! **Reading validates before it allocates.** A `.npy` header states a shape, and a reader
//! that trusts it allocates whatever the shape says: a 128-byte file claiming `(10000000000,)`
//! used to abort the process with an 80 GB allocation, and a zero-size shape whose other
//! dimensions overflow (`(0, 18446744073709551615)`) panicked inside ndarray-npy. So [`load`]
//! reads the preamble itself (magic string, version, header length), bounds the header by
//! [`MAX_HEADER_LEN`] and by the file's length, parses it with ndarray-npy's public
//! [`Header::from_reader`] (no second parser of Python literals here), maps the dtype, checks
//! the shape with checked arithmetic against `isize::MAX` (ndarray's own invariant), compares
//! the data the header promises with the bytes the file really has, applies the script's
//! element limit and probes the allocation with `try_reserve`. Only then does ndarray-npy read
//! the data, from the header bytes already validated followed by exactly the data's length of
//! the same open file, so a file changed meanwhile cannot smuggle in another header.
//!
//! Every message says what is wrong with the file; text quoted from the file or from
//! ndarray-npy is shortened to [`QUOTE_LIMIT`] characters. A file whose dtype Kiln has but the
//! script does not expect is [`LoadError::Mismatch`], the only error for which the caller
//! suggests an annotation.
//!
//! **Writing is atomic.** [`save`] writes into a temporary file beside the target, syncs it
//! and renames it over the target ([`replace_file`]), so a full disk or a crash leaves the old
//! file whole and no partial file behind. The REPL's history file uses the same helper.

use std::fs::{File, Permissions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use kiln_ir::ScalarType;
use kiln_runtime::DynArray;
use ndarray::ArrayD;
use ndarray_npy::npy::header::{Header, ParseHeaderError, ReadHeaderError};
use ndarray_npy::{ReadNpyExt, ReadableElement, WriteNpyExt};

/// The longest header [`load`] reads, in bytes. NumPy itself refuses headers over 10000
/// bytes unless told otherwise; this leaves room for files written by other tools.
pub const MAX_HEADER_LEN: usize = 1 << 16;

/// The most dimensions a loaded array may have: NumPy's own limit (`NPY_MAXDIMS`).
pub const MAX_NDIM: usize = 64;

/// The most characters of text from a file (or from ndarray-npy about it) that a message
/// quotes.
pub const QUOTE_LIMIT: usize = 200;

/// The magic string every `.npy` file starts with.
const MAGIC: &[u8] = b"\x93NUMPY";

/// The dtypes Kiln loads, for messages.
const KNOWN_DTYPES: &str = "bool (`|b1`), i32 (`<i4`), i64 (`<i8`), u32 (`<u4`), u64 (`<u8`), \
                            f32 (`<f4`) and f64 (`<f8`), little- (`<`) or big-endian (`>`)";

/// Why [`load`] failed.
#[derive(Debug)]
pub enum LoadError {
    /// The file is a well-formed `.npy` file of a Kiln dtype, but not the one asked for.
    Mismatch {
        /// The file's dtype.
        found: ScalarType,
        /// The whole message.
        message: String,
    },
    /// Anything else (the file is missing, corrupt, of an unsupported dtype, too large):
    /// the whole message, which says what is wrong.
    Bad(String),
}

/// Reads the `.npy` file at `path` as an array of `want` elements, of at most
/// `max_elements` elements.
pub fn load(path: &str, want: ScalarType, max_elements: usize) -> Result<DynArray, LoadError> {
    let shown = shorten(path);
    let bad = |what: String| LoadError::Bad(format!("cannot load `{shown}`: {what}"));
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        // Opening a FIFO for reading would block until a writer comes; without blocking, it
        // opens and is then refused as not a regular file. (No effect on regular files.)
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let mut file = options.open(path).map_err(|e| bad(io_message(&e)))?;
    let meta = file.metadata().map_err(|e| bad(io_message(&e)))?;
    if meta.is_dir() {
        return Err(bad("it is a directory".into()));
    }
    if !meta.is_file() {
        return Err(bad(
            "it is not a regular file (Kiln checks a .npy file's header against its length)".into(),
        ));
    }
    let file_len = meta.len();

    // The preamble: magic string, version, header length.
    let mut head = vec![0u8; 12];
    let got = read_up_to(&mut file, &mut head[..8]).map_err(|e| bad(io_message(&e)))?;
    let n = got.min(MAGIC.len());
    if head[..n] != MAGIC[..n] || got == 0 {
        return Err(bad(if got == 0 {
            "the file is empty, not a .npy file".into()
        } else {
            format!(
                "it is not a .npy file: it starts with `{}`, not with the magic string `\\x93NUMPY`",
                shorten(&head[..got].escape_ascii().to_string())
            )
        }));
    }
    let truncated = || bad("it is truncated: it ends inside the .npy preamble".into());
    if got < 8 {
        return Err(truncated());
    }
    let len_bytes = match (head[6], head[7]) {
        (1, 0) => 2,
        (2, 0) | (3, 0) => 4,
        (major, minor) => {
            return Err(bad(format!(
                "it is a .npy file of format version {major}.{minor}; Kiln reads versions 1.0, 2.0 and 3.0"
            )))
        }
    };
    let preamble_len = 8 + len_bytes;
    head.truncate(preamble_len);
    if read_up_to(&mut file, &mut head[8..]).map_err(|e| bad(io_message(&e)))? < len_bytes {
        return Err(truncated());
    }
    let header_len = if len_bytes == 2 {
        u16::from_le_bytes([head[8], head[9]]) as u64
    } else {
        u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as u64
    };
    if header_len > MAX_HEADER_LEN as u64 {
        return Err(bad(format!(
            "its header is {header_len} bytes long; Kiln reads headers of at most {MAX_HEADER_LEN} bytes"
        )));
    }
    let after_preamble = file_len.saturating_sub(preamble_len as u64);
    if header_len > after_preamble {
        return Err(bad(format!(
            "it is truncated: its header should be {header_len} bytes long, but only \
             {after_preamble} bytes follow the preamble"
        )));
    }

    // The header, at most MAX_HEADER_LEN bytes, parsed by ndarray-npy.
    head.resize(preamble_len + header_len as usize, 0);
    let got = read_up_to(&mut file, &mut head[preamble_len..]).map_err(|e| bad(io_message(&e)))?;
    if got < header_len as usize {
        return Err(bad(format!(
            "it is truncated: its header should be {header_len} bytes long, but the file ends \
             after {got}"
        )));
    }
    let header = Header::from_reader(&mut &head[..]).map_err(|e| bad(header_error(e)))?;

    // The dtype.
    let Some(descr) = header.type_descriptor.as_string().cloned() else {
        return Err(bad(format!(
            "its elements are of a structured dtype, `{}`, which Kiln has no type for; \
             Kiln loads {KNOWN_DTYPES}",
            shorten(&header.type_descriptor.to_string())
        )));
    };
    let Some(found) = dtype(&descr) else {
        return Err(bad(format!(
            "its elements are of dtype `{}`, which Kiln has no type for; Kiln loads {KNOWN_DTYPES}",
            shorten(&descr)
        )));
    };
    let descr = shorten(&descr);

    // The shape: the element count and the bytes it needs, checked.
    let shape = &header.shape;
    let shape_text = || shorten(&format_shape(shape));
    if shape.len() > MAX_NDIM {
        return Err(bad(format!(
            "its shape has {} dimensions; NumPy and Kiln allow at most {MAX_NDIM}",
            shape.len()
        )));
    }
    let itemsize = kiln_runtime::array::element_bytes(found);
    // ndarray's invariant, which zero-size arrays must meet too: the non-zero dimensions
    // multiply to at most isize::MAX elements, and (here) bytes.
    let nonzero = shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| {
            n.checked_mul(itemsize)
                .is_some_and(|b| b <= isize::MAX as usize)
        });
    let Some(nonzero) = nonzero else {
        return Err(bad(format!(
            "its shape {} is too large for any array: its non-zero dimensions multiply to more \
             than {} bytes of `{descr}`",
            shape_text(),
            isize::MAX
        )));
    };
    let count = if shape.contains(&0) { 0 } else { nonzero };
    let bytes = (count * itemsize) as u64;
    let data_len = after_preamble - header_len;
    if data_len < bytes {
        return Err(bad(format!(
            "it is truncated: its header promises {bytes} bytes of data (shape {}, `{descr}`), \
             but only {data_len} bytes follow the header",
            shape_text()
        )));
    }
    if data_len > bytes {
        return Err(bad(format!(
            "it has {} bytes after the {bytes} bytes of data its header describes (shape {}, \
             `{descr}`)",
            data_len - bytes,
            shape_text()
        )));
    }
    if count > max_elements {
        return Err(bad(format!(
            "it holds {count} elements (shape {}), more than this script may allocate ({max_elements})",
            shape_text()
        )));
    }
    if found != want {
        return Err(LoadError::Mismatch {
            found,
            message: format!(
                "cannot load `{shown}` as an array of {want}: the file holds {found} elements (`{descr}`)"
            ),
        });
    }
    if Vec::<u8>::new().try_reserve_exact(bytes as usize).is_err() {
        return Err(bad(format!(
            "cannot allocate the {bytes} bytes of its data (out of memory)"
        )));
    }

    // The data: ndarray-npy reads the validated header, then exactly `bytes` of the file.
    let reader = io::Cursor::new(head).chain(file.take(bytes));
    let read = |e: ndarray_npy::ReadNpyError| bad(shorten(&e.to_string()));
    Ok(match found {
        ScalarType::Bool => DynArray::Bool(read_array(reader).map_err(read)?),
        ScalarType::I32 => DynArray::I32(read_array(reader).map_err(read)?),
        ScalarType::I64 => DynArray::I64(read_array(reader).map_err(read)?),
        ScalarType::U32 => DynArray::U32(read_array(reader).map_err(read)?),
        ScalarType::U64 => DynArray::U64(read_array(reader).map_err(read)?),
        ScalarType::F32 => DynArray::F32(read_array(reader).map_err(read)?),
        ScalarType::F64 => DynArray::F64(read_array(reader).map_err(read)?),
    })
}

fn read_array<T: ReadableElement>(r: impl Read) -> Result<ArrayD<T>, ndarray_npy::ReadNpyError> {
    ArrayD::<T>::read_npy(r)
}

/// Reads into `buf` until it is full or the reader ends; the bytes read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Kiln's type for a `.npy` dtype string, as ndarray-npy reads it.
fn dtype(descr: &str) -> Option<ScalarType> {
    Some(match descr {
        "|b1" => ScalarType::Bool,
        "<i4" | ">i4" => ScalarType::I32,
        "<i8" | ">i8" => ScalarType::I64,
        "<u4" | ">u4" => ScalarType::U32,
        "<u8" | ">u8" => ScalarType::U64,
        "<f4" | ">f4" => ScalarType::F32,
        "<f8" | ">f8" => ScalarType::F64,
        _ => return None,
    })
}

/// A shape as NumPy writes it: `(3,)`, `(2, 3)`, `()`.
fn format_shape(shape: &[usize]) -> String {
    match shape {
        [n] => format!("({n},)"),
        _ => {
            let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
            format!("({})", parts.join(", "))
        }
    }
}

/// What is wrong with a header ndarray-npy could not parse.
fn header_error(e: ReadHeaderError) -> String {
    match e {
        ReadHeaderError::Io(e) => format!("it is truncated: {}", io_message(&e)),
        // ndarray-npy 0.10.0 names a missing `shape` "shaper" (npy/header.rs:433); the other
        // keys it names correctly.
        ReadHeaderError::Parse(ParseHeaderError::MissingKey(key)) => {
            let key = if key == "shaper" { "shape" } else { &key };
            format!("its header has no `{}` entry", shorten(key))
        }
        ReadHeaderError::Parse(p) => {
            format!("its header is malformed: {}", shorten(&p.to_string()))
        }
    }
}

/// `s` as a message may quote it: control characters escaped, at most [`QUOTE_LIMIT`]
/// characters, then an ellipsis and the full length.
pub fn shorten(s: &str) -> String {
    let mut out = String::new();
    let mut chars = 0;
    let mut total = 0;
    for c in s.chars() {
        total += 1;
        if chars < QUOTE_LIMIT {
            if c.is_control() {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
            chars += 1;
        }
    }
    if total > QUOTE_LIMIT {
        out.push_str(&format!("… ({total} characters in all)"));
    }
    out
}

/// An I/O error's text without Rust's " (os error N)" suffix.
pub fn io_message(e: &io::Error) -> String {
    without_os_error(e.to_string())
}

fn without_os_error(s: String) -> String {
    match s.rfind(" (os error ") {
        Some(i) if s.ends_with(')') => s[..i].to_owned(),
        _ => s,
    }
}

/// Writes `a` to the `.npy` file at `path`, atomically (see [`replace_file`]). A device, FIFO
/// or socket (`/dev/stdout`, a pipe) cannot be replaced; it is written in place.
pub fn save(path: &str, a: &DynArray) -> io::Result<()> {
    let path = Path::new(path);
    if is_special(path) {
        let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
        return write_array(&mut f, a);
    }
    replace_file(path, |file| write_array(file, a).map(|()| true)).map(|_| ())
}

fn write_array(file: &mut File, a: &DynArray) -> io::Result<()> {
    let mut w = io::BufWriter::new(file);
    let r = match a {
        DynArray::Bool(x) => x.write_npy(&mut w),
        DynArray::I32(x) => x.write_npy(&mut w),
        DynArray::I64(x) => x.write_npy(&mut w),
        DynArray::U32(x) => x.write_npy(&mut w),
        DynArray::U64(x) => x.write_npy(&mut w),
        DynArray::F32(x) => x.write_npy(&mut w),
        DynArray::F64(x) => x.write_npy(&mut w),
    };
    r.map_err(|e| match e {
        ndarray_npy::WriteNpyError::Io(e) => e,
        other => io::Error::other(other.to_string()),
    })?;
    w.flush()
}

/// Whether `path` names (through any links, as the kernel follows them) something that
/// exists and is neither a regular file nor a directory: a device, a FIFO or a socket.
fn is_special(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

/// Replaces the file at `path` with what `write` puts into a new temporary file in the same
/// directory: the temporary file is synced and then renamed over the target, so the target
/// is at every moment either the old file, whole, or the new one, whole. On any error the
/// temporary file is removed. A symbolic link is followed: the file it points to is
/// replaced and the link kept. A target that is neither a regular file nor missing (a
/// directory, a device such as `/dev/null`) is an error and is left alone. An existing file
/// keeps its permissions; a new one gets the usual `0o666` less the umask.
///
/// `write` gets the temporary file (also at `file.path()`) and says whether it wrote
/// anything worth keeping: on `Ok(false)` the target is left alone and `Ok(false)` returned.
pub fn replace_file(
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<bool>,
) -> io::Result<bool> {
    replace_file_at(path, |tmp| write(tmp.as_file_mut()))
}

/// [`replace_file`], with `write` given the temporary file with its path (for writers, such
/// as rustyline's history, that open a path themselves).
pub fn replace_file_at(
    path: &Path,
    write: impl FnOnce(&mut tempfile::NamedTempFile) -> io::Result<bool>,
) -> io::Result<bool> {
    let target = resolve_links(path)?;
    let old = match std::fs::metadata(&target) {
        Ok(m) if m.is_dir() => {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                "Is a directory",
            ))
        }
        // Renaming over `/dev/null` would replace the device with a regular file.
        Ok(m) if !m.is_file() => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file, so it is not replaced",
            ))
        }
        Ok(m) => Some(m.permissions()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .map_or_else(|| "kiln".into(), |n| n.to_string_lossy().into_owned());
    let mut builder = tempfile::Builder::new();
    let prefix = format!(".{name}.");
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Subject to the umask, as `File::create` is.
        builder.permissions(Permissions::from_mode(0o666));
    }
    let shown_dir = || shorten(&dir.display().to_string());
    match std::fs::metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("`{}` is not a directory", shown_dir()),
            ))
        }
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("{} (the directory `{}`)", io_message(&e), shown_dir()),
            ))
        }
    }
    let mut tmp = builder.tempfile_in(&dir).map_err(|e| {
        // tempfile's message ends with the random temporary path (and hides the OS error
        // inside a private type); name the directory instead.
        let text = e.to_string();
        let why = text.split(" at path \"").next().unwrap_or(&text).to_owned();
        io::Error::new(
            e.kind(),
            format!(
                "{} (creating a temporary file in `{}`)",
                without_os_error(why),
                shown_dir()
            ),
        )
    })?;
    if !write(&mut tmp)? {
        return Ok(false);
    }
    if let Some(p) = old {
        tmp.as_file().set_permissions(p)?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(&target).map_err(|e| e.error)?;
    // Make the rename itself durable; a file system that cannot sync a directory still has
    // the new file, so this is best effort.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(true)
}

/// `path` with symbolic links followed to the file they name (which need not exist yet).
fn resolve_links(path: &Path) -> io::Result<PathBuf> {
    let mut target = path.to_path_buf();
    // As the kernel's limit on links in one lookup (Linux's MAXSYMLINKS).
    for _ in 0..40 {
        match std::fs::symlink_metadata(&target) {
            Ok(m) if m.file_type().is_symlink() => {
                let link = std::fs::read_link(&target)?;
                target = match target.parent() {
                    Some(dir) if link.is_relative() => dir.join(link),
                    _ => link,
                };
            }
            _ => return Ok(target),
        }
    }
    Err(io::Error::other("Too many levels of symbolic links"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorten_quotes_long_text_with_an_ellipsis() {
        assert_eq!(shorten("abc"), "abc");
        assert_eq!(shorten("a\nb"), "a\\nb");
        let long = "(".repeat(1_000_000);
        let s = shorten(&long);
        assert!(s.len() < 300, "{}", s.len());
        assert!(s.ends_with("… (1000000 characters in all)"), "{s}");
    }

    #[test]
    fn io_messages_drop_the_os_error_number() {
        let e = io::Error::from_raw_os_error(21);
        assert_eq!(io_message(&e), "Is a directory");
    }

    #[test]
    fn a_failed_or_empty_replacement_keeps_the_old_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let target = dir.path().join("history");
        std::fs::write(&target, "old").expect("writes");
        let names = || std::fs::read_dir(dir.path()).expect("readable").count();
        let err = replace_file(&target, |f| {
            f.write_all(b"partial")?;
            Err(io::Error::other("disk full"))
        })
        .expect_err("fails");
        assert_eq!(err.to_string(), "disk full");
        let nothing = replace_file_at(&target, |_| Ok(false)).expect("succeeds");
        assert!(!nothing);
        assert_eq!(std::fs::read_to_string(&target).expect("kept"), "old");
        assert_eq!(names(), 1);
        // Through a path, as rustyline writes its history.
        let done = replace_file_at(&target, |tmp| {
            std::fs::write(tmp.path(), "new")?;
            Ok(true)
        })
        .expect("replaces");
        assert!(done);
        assert_eq!(std::fs::read_to_string(&target).expect("new"), "new");
        assert_eq!(names(), 1);
    }

    #[test]
    fn shapes_print_as_numpy_tuples() {
        assert_eq!(format_shape(&[]), "()");
        assert_eq!(format_shape(&[3]), "(3,)");
        assert_eq!(format_shape(&[2, 3]), "(2, 3)");
    }
}
