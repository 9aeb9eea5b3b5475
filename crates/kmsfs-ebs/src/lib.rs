//! A simulation of Amazon EBS encryption on this host.
//!
//! The model is AWS's (docs/EBS.md): every encrypted volume has one data
//! key, made by `GenerateDataKeyWithoutPlaintext` under the volume's CMK
//! with the encryption context `aws:ebs:id` = the volume id and stored,
//! wrapped, in the volume's image; attaching the volume asks the key service
//! to `Decrypt` it, and the plaintext key then lives only in the memory of
//! the process serving the attached block device. A snapshot shares its
//! volume's data key; a copy under another key gets a new one and every
//! block is sealed again.
//!
//! - [`model`]: volumes, snapshots, attachments, per-region defaults, as
//!   the EC2 API names them;
//! - [`image`]: the sealed image of a volume or snapshot (a kmsfs format
//!   version 1 file, docs/FORMAT.md) and the copies between images;
//! - [`pool`]: the pool directory and its crash-safe state file;
//! - [`engine`]: the operations ([`engine::Ebs`]), with their KMS calls;
//! - [`ec2`]: the EC2 Query protocol as types (form parameters in, XML
//!   out) and [`ec2::Ec2Backend`], the operations it dispatches to;
//! - [`devices`]: [`devices::BlockDevices`], what attaching needs from the
//!   host (implemented by kmsfs-mount);
//! - [`error`]: [`EbsError`], one variant per EC2 error code.

pub mod devices;
pub mod ec2;
pub mod engine;
pub mod error;
pub mod ids;
pub mod image;
pub mod model;
pub mod pool;

pub use error::EbsError;
