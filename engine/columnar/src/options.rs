//! Firehose's `ParquetSerDe` settings (`ParquetOptions`, AWS's defaults) and how they
//! map onto parquet's `WriterProperties`.
//!
//! | AWS field | here | parquet |
//! |---|---|---|
//! | `Compression` (SNAPPY) | `compression` | `set_compression` (GZIP at level 6) |
//! | `BlockSizeBytes` (256 MiB) | `block_size_bytes` | `set_max_row_group_bytes`: a row group is closed when its estimated encoded size reaches it (parquet-mr's `parquet.block.size`) |
//! | `PageSizeBytes` (1 MiB) | `page_size_bytes` | `set_data_page_size_limit` and `set_dictionary_page_size_limit` |
//! | `EnableDictionaryCompression` (no AWS default; parquet-mr's `true`) | `enable_dictionary` | `set_dictionary_enabled` |
//! | `WriterVersion` (V1) | `writer_version` | `PARQUET_1_0` / `PARQUET_2_0` |
//! | `MaxPaddingBytes` (0) | `max_padding_bytes` | **not mapped**: parquet-rs never pads row groups to HDFS block boundaries, which is what padding 0 means anyway |
//!
//! AWS's minimums (64 MiB blocks, 64 KiB pages) are for Firehose's configuration check
//! to enforce; the converter only refuses zero, which parquet cannot use.

use parquet::basic::{Compression, GzipLevel};
use parquet::file::properties::{WriterProperties, WriterVersion as ParquetWriterVersion};

/// `ParquetSerDe.Compression`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParquetCompression {
    Uncompressed,
    Gzip,
    Snappy,
}

/// `ParquetSerDe.WriterVersion`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriterVersion {
    V1,
    V2,
}

/// `ParquetSerDe`, with AWS's defaults from `Default`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParquetOptions {
    pub compression: ParquetCompression,
    pub block_size_bytes: usize,
    pub page_size_bytes: usize,
    pub enable_dictionary: bool,
    pub writer_version: WriterVersion,
    pub max_padding_bytes: usize,
}

/// AWS's documented defaults and minimums.
pub const BLOCK_SIZE_BYTES_DEFAULT: usize = 256 * 1024 * 1024;
pub const BLOCK_SIZE_BYTES_MIN: usize = 64 * 1024 * 1024;
pub const PAGE_SIZE_BYTES_DEFAULT: usize = 1024 * 1024;
pub const PAGE_SIZE_BYTES_MIN: usize = 64 * 1024;

impl Default for ParquetOptions {
    fn default() -> Self {
        ParquetOptions {
            compression: ParquetCompression::Snappy,
            block_size_bytes: BLOCK_SIZE_BYTES_DEFAULT,
            page_size_bytes: PAGE_SIZE_BYTES_DEFAULT,
            enable_dictionary: true,
            writer_version: WriterVersion::V1,
            max_padding_bytes: 0,
        }
    }
}

impl ParquetOptions {
    /// parquet's writer properties for these options.
    pub fn writer_properties(&self) -> Result<WriterProperties, String> {
        if self.block_size_bytes == 0 {
            return Err("BlockSizeBytes must be greater than 0".to_owned());
        }
        if self.page_size_bytes == 0 {
            return Err("PageSizeBytes must be greater than 0".to_owned());
        }
        let compression = match self.compression {
            ParquetCompression::Uncompressed => Compression::UNCOMPRESSED,
            ParquetCompression::Gzip => Compression::GZIP(GzipLevel::default()),
            ParquetCompression::Snappy => Compression::SNAPPY,
        };
        let version = match self.writer_version {
            WriterVersion::V1 => ParquetWriterVersion::PARQUET_1_0,
            WriterVersion::V2 => ParquetWriterVersion::PARQUET_2_0,
        };
        Ok(WriterProperties::builder()
            .set_compression(compression)
            .set_writer_version(version)
            .set_max_row_group_row_count(None)
            .set_max_row_group_bytes(Some(self.block_size_bytes))
            .set_data_page_size_limit(self.page_size_bytes)
            .set_dictionary_page_size_limit(self.page_size_bytes)
            .set_dictionary_enabled(self.enable_dictionary)
            .build())
    }
}
