//! Stores: where encoded objects go. A store receives finished bytes and a key and
//! answers only when the object is durably stored, or with the reason it is not.
//!
//! Owns: talking to the destination. Must not touch: encoding, key choice or state;
//! `target` decides what a completed upload means.

pub mod s3;
pub mod upload;

pub use s3::S3Store;
pub use upload::{Upload, Uploader};
