//! Records written by `Converter` and read back with parquet's Arrow reader: every
//! scalar type, nested types, both SerDes' key matching and timestamp formats,
//! concatenated objects, compressions and writer settings, many batches and row groups.

mod common;

use std::collections::BTreeMap;

use common::{converter, micros, read_batches, read_rows, roundtrip, schema};
use parquet::basic::Compression;
use parquet::file::reader::{FileReader, SerializedFileReader};
use riffle_columnar::{Converter, Deserializer, ParquetCompression, ParquetOptions, WriterVersion};
use serde_json::json;

fn openx(case_insensitive: bool, dots: bool, mappings: &[(&str, &str)]) -> Deserializer {
    Deserializer::OpenX {
        case_insensitive,
        convert_dots_in_json_keys_to_underscores: dots,
        column_to_json_key_mappings: mappings
            .iter()
            .map(|(c, k)| (c.to_string(), k.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn hive(formats: &[&str]) -> Deserializer {
    Deserializer::Hive {
        timestamp_formats: formats.iter().map(|f| f.to_string()).collect(),
    }
}

const SCALARS: &[(&str, &str)] = &[
    ("s", "string"),
    ("c", "char(3)"),
    ("v", "varchar(4)"),
    ("b", "boolean"),
    ("i8", "tinyint"),
    ("i16", "smallint"),
    ("i32", "int"),
    ("i64", "bigint"),
    ("f", "float"),
    ("d", "double"),
    ("dec", "decimal(10,2)"),
    ("big", "decimal(38,4)"),
    ("day", "date"),
    ("ts", "timestamp"),
    ("bin", "binary"),
];

#[test]
fn every_scalar_type_round_trips() {
    for deserializer in [Deserializer::default(), hive(&[])] {
        let rows = roundtrip(
            SCALARS,
            deserializer.clone(),
            &[
                r#"{"s":"héllo","c":"ab  xyz","v":"abcdefg","b":true,"i8":-128,"i16":32767,"i32":-5,
                   "i64":9223372036854775807,"f":1.5,"d":-2.25,"dec":12.345,"big":"-12345678901234567890123456789012.3456",
                   "day":"2024-02-29","ts":"2017-02-04 12:15:11.5","bin":"raw"}"#,
                // Numbers and booleans as strings, text from numbers.
                r#"{"s":42,"c":"a","v":true,"b":"FALSE","i8":"12","i16":"-7","i32":"2147483647","i64":"-1",
                   "f":"NaN","d":"1e3","dec":"1e2","big":0,"day":"1970-1-2","ts":"1970-01-01 00:00:00","bin":""}"#,
                // Nulls and missing keys.
                r#"{"s":null,"i32":3.0,"extra":"ignored"}"#,
            ],
        );
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[0],
            json!({"s":"héllo","c":"ab","v":"abcd","b":true,"i8":-128,"i16":32767,"i32":-5,
                   "i64":9223372036854775807i64,"f":1.5,"d":-2.25,"dec":"12.35",
                   "big":"-12345678901234567890123456789012.3456","day":19782,
                   "ts":micros(2017,2,4,12,15,11)+500_000,"bin":"raw"}),
            "{deserializer:?}"
        );
        let second = &rows[1];
        assert_eq!(second["s"], json!("42"));
        assert_eq!(second["v"], json!("true"));
        assert_eq!(second["b"], json!(false));
        assert_eq!(second["i8"], json!(12));
        assert_eq!(second["i32"], json!(2147483647));
        assert!(
            second["f"].is_null(),
            "NaN reads back as a float the JSON helper cannot show"
        );
        assert_eq!(second["d"], json!(1000.0));
        assert_eq!(second["dec"], json!("100.00"));
        assert_eq!(second["big"], json!("0.0000"));
        assert_eq!(second["day"], json!(1));
        assert_eq!(second["ts"], json!(0));
        assert_eq!(second["bin"], json!(""));
        let third = rows[2].as_object().unwrap();
        assert_eq!(third["i32"], json!(3));
        assert!(
            third
                .iter()
                .filter(|(k, _)| *k != "i32")
                .all(|(_, v)| v.is_null()),
            "{third:?}"
        );
    }
}

#[test]
fn nested_types_round_trip() {
    let columns = [
        ("tags", "array<string>"),
        ("counts", "map<string,bigint>"),
        ("by_day", "map<int,array<double>>"),
        (
            "who",
            "struct<name:string,Age:int,addr:struct<zip:varchar(5),lines:array<string>>>",
        ),
        ("events", "array<struct<kind:string,at:timestamp>>"),
        ("grid", "array<array<int>>"),
    ];
    let rows = roundtrip(
        &columns,
        Deserializer::default(),
        &[
            r#"{"tags":["a",null,"c"],"counts":{"x":1,"y":null},"by_day":{"1":[1.5],"-2":[]},
                "who":{"NAME":"ann","age":"41","addr":{"zip":"123456","lines":["l1"]}},
                "events":[{"kind":"k","at":1486210511},null],"grid":[[1,2],[],null,[3]]}"#,
            r#"{"tags":[],"counts":{},"who":{"addr":null},"events":null}"#,
            r#"{}"#,
        ],
    );
    assert_eq!(
        rows[0],
        json!({
            "tags":["a",null,"c"], "counts":{"x":1,"y":null}, "by_day":{"-2":[],"1":[1.5]},
            "who":{"name":"ann","Age":41,"addr":{"zip":"12345","lines":["l1"]}},
            "events":[{"kind":"k","at":micros(2017,2,4,12,15,11)},null],
            "grid":[[1,2],[],null,[3]]
        })
    );
    assert_eq!(
        rows[1],
        json!({"tags":[],"counts":{},"by_day":null,"who":{"name":null,"Age":null,"addr":null},"events":null,"grid":null})
    );
    assert_eq!(
        rows[2],
        json!({"tags":null,"counts":null,"by_day":null,"who":null,"events":null,"grid":null})
    );
}

#[test]
fn openx_case_insensitivity_mappings_and_dots() {
    let columns = [("id", "int"), ("user_name", "string"), ("ts", "bigint")];
    let record = r#"{"ID":1,"User.Name":"x","user_name":"plain","timestamp":7,"TS":99}"#;
    for (deserializer, expected) in [
        // Default: case-insensitive, dots kept ("User.Name" matches nothing).
        (
            openx(true, false, &[]),
            json!({"id":1,"user_name":"plain","ts":99}),
        ),
        // Case-sensitive: "ID" and "TS" match nothing.
        (
            openx(false, false, &[]),
            json!({"id":null,"user_name":"plain","ts":null}),
        ),
        // Mapping: ts is read from "timestamp" only.
        (
            openx(true, false, &[("ts", "timestamp")]),
            json!({"id":1,"user_name":"plain","ts":7}),
        ),
        (
            openx(true, false, &[("TS", "TimeStamp")]),
            json!({"id":1,"user_name":"plain","ts":7}),
        ),
        // Hive matches case-insensitively too.
        (hive(&[]), json!({"id":1,"user_name":"plain","ts":99})),
    ] {
        assert_eq!(
            roundtrip(&columns, deserializer.clone(), &[record]),
            vec![expected],
            "{deserializer:?}"
        );
    }
    // Dots → underscores: "User.Name" becomes user_name (it and "user_name" collide;
    // without the plain key it is the only source).
    let rows = roundtrip(
        &columns,
        openx(true, true, &[]),
        &[r#"{"User.Name":"dotted","id":2}"#],
    );
    assert_eq!(rows, vec![json!({"id":2,"user_name":"dotted","ts":null})]);
    // Dots apply inside structs as well.
    let rows = roundtrip(
        &[("outer", "struct<in_ner:int>")],
        openx(true, true, &[]),
        &[r#"{"Outer":{"IN.NER":5}}"#],
    );
    assert_eq!(rows, vec![json!({"outer":{"in_ner":5}})]);
}

#[test]
fn openx_timestamps() {
    let t = micros(2017, 2, 4, 12, 15, 11);
    let rows = roundtrip(
        &[("ts", "timestamp")],
        Deserializer::default(),
        &[
            r#"{"ts":"2017-02-04T12:15:11Z"}"#,
            r#"{"ts":"2017-02-04T12:15:11.123Z"}"#,
            r#"{"ts":"2017-2-4 12:15:11"}"#,
            r#"{"ts":"2017-02-04 12:15:11.25"}"#,
            r#"{"ts":1486210511}"#,
            r#"{"ts":"1486210511"}"#,
            r#"{"ts":1486210511000}"#,
            r#"{"ts":1486210511.5}"#,
            r#"{"ts":"1486210511.5"}"#,
        ],
    );
    let got: Vec<i64> = rows.iter().map(|r| r["ts"].as_i64().unwrap()).collect();
    assert_eq!(
        got,
        vec![
            t,
            t + 123_000,
            t,
            t + 250_000,
            t,
            t,
            t,
            t + 500_000,
            t + 500_000
        ]
    );
}

#[test]
fn hive_timestamps() {
    let t = micros(2021, 3, 7, 14, 5, 9);
    let rows = roundtrip(
        &[("ts", "timestamp")],
        hive(&[
            "millis",
            "dd/MM/yyyy HH:mm:ss",
            "yyyy-MM-dd'T'HH:mm:ss.SSSZZ",
            "MMM d, yyyy h:mm a",
        ]),
        &[
            r#"{"ts":1615125909000}"#,
            r#"{"ts":"1615125909000"}"#,
            r#"{"ts":"07/03/2021 14:05:09"}"#,
            r#"{"ts":"2021-03-07T16:05:09.250+02:00"}"#,
            r#"{"ts":"Mar 7, 2021 2:05 PM"}"#,
            // Hive's default format is tried after the configured ones.
            r#"{"ts":"2021-03-07 14:05:09.000001"}"#,
        ],
    );
    let got: Vec<i64> = rows.iter().map(|r| r["ts"].as_i64().unwrap()).collect();
    assert_eq!(got, vec![t, t, t, t + 250_000, t - 9_000_000, t + 1]);

    // Without "millis", a number is not a Hive timestamp.
    let mut c = converter(&[("ts", "timestamp")], hive(&[]));
    let err = c.push(br#"{"ts":1615125909000}"#).unwrap_err();
    assert_eq!(
        err,
        "column \"ts\": 1615125909000 is not a timestamp in any of the formats (yyyy-MM-dd HH:mm:ss[.fffffffff])"
    );
}

#[test]
fn concatenated_objects_are_rows() {
    let rows = roundtrip(
        &[("a", "int")],
        Deserializer::default(),
        &[
            r#"{"a":1}{"a":2}"#,
            "  {\"a\":3}\n{\"a\":4}\r\n\t {\"a\":5}\n",
            r#"{"a":6}"#,
        ],
    );
    let got: Vec<i64> = rows.iter().map(|r| r["a"].as_i64().unwrap()).collect();
    assert_eq!(got, vec![1, 2, 3, 4, 5, 6]);
}

#[test]
fn every_compression_and_writer_setting_is_readable() {
    let columns = [
        ("id", "bigint"),
        ("name", "string"),
        ("tags", "array<string>"),
    ];
    for (compression, codec) in [
        (ParquetCompression::Uncompressed, "UNCOMPRESSED"),
        (ParquetCompression::Gzip, "GZIP"),
        (ParquetCompression::Snappy, "SNAPPY"),
    ] {
        for writer_version in [WriterVersion::V1, WriterVersion::V2] {
            for enable_dictionary in [true, false] {
                let options = ParquetOptions {
                    compression,
                    writer_version,
                    enable_dictionary,
                    ..ParquetOptions::default()
                };
                let mut c =
                    Converter::new(&schema(&columns), Deserializer::default(), options).unwrap();
                for i in 0..1000 {
                    c.push(
                        format!(r#"{{"id":{i},"name":"n{}","tags":["t{i}"]}}"#, i % 7).as_bytes(),
                    )
                    .unwrap();
                }
                let file = c.finish().unwrap();
                let reader = SerializedFileReader::new(bytes::Bytes::from(file.clone())).unwrap();
                let column = reader.metadata().row_group(0).column(0);
                let expected = match codec {
                    "UNCOMPRESSED" => Compression::UNCOMPRESSED,
                    "SNAPPY" => Compression::SNAPPY,
                    _ => column.compression(), // GZIP carries its level; checked by name
                };
                assert_eq!(column.compression(), expected);
                assert!(
                    format!("{:?}", column.compression()).starts_with(codec),
                    "{codec}"
                );
                let rows = read_rows(file);
                assert_eq!(rows.len(), 1000);
                assert_eq!(rows[999], json!({"id":999,"name":"n5","tags":["t999"]}));
            }
        }
    }
}

#[test]
fn many_batches_and_row_groups_keep_order() {
    let columns = [("id", "bigint"), ("pad", "string")];
    let options = ParquetOptions {
        block_size_bytes: 64 * 1024,
        ..ParquetOptions::default()
    };
    let mut c = Converter::new(&schema(&columns), Deserializer::default(), options).unwrap();
    let rows_total = 50_000;
    for i in 0..rows_total {
        c.push(format!(r#"{{"id":{i},"pad":"{i:0>20}"}}"#).as_bytes())
            .unwrap();
    }
    assert_eq!(c.rows(), rows_total);
    let file = c.finish().unwrap();
    let reader = SerializedFileReader::new(bytes::Bytes::from(file.clone())).unwrap();
    assert!(
        reader.metadata().num_row_groups() > 2,
        "{} row groups",
        reader.metadata().num_row_groups()
    );
    let ids: Vec<i64> = read_rows(file)
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, (0..rows_total as i64).collect::<Vec<_>>());
}

#[test]
fn no_rows_gives_a_valid_empty_file() {
    let c = converter(&[("a", "int")], Deserializer::default());
    let file = c.finish().unwrap();
    assert_eq!(&file[..4], b"PAR1");
    assert_eq!(&file[file.len() - 4..], b"PAR1");
    assert!(read_batches(file).is_empty());
}
