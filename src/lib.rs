//! ocicas: an OCI content-addressable blob store over a standard OCI image layout, with a C ABI.
//!
//! The core modules know nothing of C; `ffi` converts between the C ABI and this API.

pub mod archive;
pub mod cancel;
pub mod content;
pub mod digest;
pub mod engine;
pub mod error;
pub mod filters;
pub mod fsck;
pub mod gc;
mod graph;
pub mod image;
pub mod layer_reader;
pub mod layout;
pub mod lease;
pub mod limits;
pub mod refs;
pub mod registry;
pub mod resolve;
pub mod spec;
pub mod stream;
mod threads;
pub mod timestamp;
pub mod walk;

mod ffi;

pub use cancel::Cancel;
pub use content::{BlobInfo, BlobReader, CopySource, IngestStatus, IngestWriter, Labels, StoredBlob, WriterOptions};
pub use digest::{Algorithm, Digest};
pub use engine::{Engine, OpenOptions};
pub use error::{Error, ErrorKind, Result};
pub use filters::Filters;
pub use fsck::{FsckOptions, FsckReport};
pub use gc::{GcOptions, GcReport};
pub use layer_reader::UncompressedLayerReader;
pub use lease::{Lease, LeaseResource};
pub use limits::{Limit, Limits};
pub use registry::{Credentials, RegistryOptions, RemoteRef, TransferReport};
pub use resolve::ResolvedImage;
pub use spec::{Descriptor, Document};
pub use stream::{
    Compression, CompressionKind, CompressionOptions, LayerDescriptor, LayerReader, LayerStream, MediaTypeStyle,
    StorageOptions,
};
pub use walk::WalkStep;
