//! The service models compiled into the binary, vendored from botocore under
//! `protocol/aws/models/` (see its README for the version and how to update).
//! Each is parsed on first use and kept for the life of the process. One
//! function per model, each with its own `include_str!`, so a binary that never
//! calls one can drop its text at link time.

use std::sync::OnceLock;

use super::ServiceModel;

macro_rules! embedded_model {
    ($(#[$doc:meta])* $name:ident, $dir:literal) => {
        $(#[$doc])*
        pub fn $name() -> &'static ServiceModel {
            static MODEL: OnceLock<ServiceModel> = OnceLock::new();
            MODEL.get_or_init(|| {
                let json = include_str!(concat!("../../models/", $dir, "/service-2.json"));
                // The vendored files are ours; `tests::all_models_parse` proves them.
                ServiceModel::parse(json).expect(concat!("vendored model ", $dir))
            })
        }
    };
}

embedded_model!(
    /// Kinesis Data Streams (`Kinesis_20131202`, JSON 1.1).
    kinesis, "kinesis"
);
embedded_model!(
    /// Data Firehose (`Firehose_20150804`, JSON 1.1).
    firehose, "firehose"
);
embedded_model!(
    /// Kinesis Data Analytics, the SQL API (`KinesisAnalytics_20150814`, JSON 1.1).
    kinesis_analytics, "kinesisanalytics"
);
embedded_model!(
    /// Kinesis Video Streams, control plane (REST-JSON).
    kinesis_video, "kinesisvideo"
);
embedded_model!(
    /// Kinesis Video Streams, PutMedia/GetMedia (REST-JSON).
    kinesis_video_media, "kinesis-video-media"
);
embedded_model!(
    /// Kinesis Video Streams, archived media: HLS, DASH, clips, fragments (REST-JSON).
    kinesis_video_archived_media, "kinesis-video-archived-media"
);
embedded_model!(
    /// Lambda (REST-JSON): the function contract Firehose transforms follow.
    lambda, "lambda"
);
embedded_model!(
    /// Glue (JSON 1.1): the table schemas Firehose format conversion reads.
    glue, "glue"
);
embedded_model!(
    /// CloudWatch (`monitoring`; botocore's `cloudwatch` directory).
    monitoring, "monitoring"
);

/// An embedded model's accessor.
pub type ModelFn = fn() -> &'static ServiceModel;

/// Every embedded model with its directory name, for tests and tools.
pub fn all() -> [(&'static str, ModelFn); 9] {
    [
        ("kinesis", kinesis),
        ("firehose", firehose),
        ("kinesisanalytics", kinesis_analytics),
        ("kinesisvideo", kinesis_video),
        ("kinesis-video-media", kinesis_video_media),
        ("kinesis-video-archived-media", kinesis_video_archived_media),
        ("lambda", lambda),
        ("glue", glue),
        ("monitoring", monitoring),
    ]
}
