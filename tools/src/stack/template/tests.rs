//! Templates refused with the path of their offending node, and the order
//! of resources by their dependencies.

use super::*;
use crate::stack::yaml;

fn read(text: &str) -> Result<Template, String> {
    Template::read(&yaml::parse(text)?)
}

const STREAM: &str = "  S:\n    Type: AWS::Kinesis::Stream\n    Properties: {ShardCount: 1}\n";

#[test]
fn resources_come_after_what_they_name() {
    let t = read(
        "Resources:
  Out:
    Type: AWS::KinesisAnalytics::ApplicationOutput
    Properties:
      ApplicationName: !Ref App
      Output: {Name: O, DestinationSchema: {RecordFormatType: JSON}, KinesisStreamsOutput: {ResourceARN: !GetAtt S.Arn, RoleARN: r}}
  App:
    Type: AWS::KinesisAnalytics::Application
    Properties:
      Inputs: []
      ApplicationCode: !Sub '${S}'
  S:
    Type: AWS::Kinesis::Stream
  Z:
    Type: AWS::KinesisVideo::Stream
    DependsOn: Out
",
    )
    .unwrap();
    assert_eq!(t.order, ["S", "App", "Out", "Z"]);
    assert_eq!(
        t.resources["Out"].depends_on,
        BTreeSet::from(["App".to_string(), "S".to_string()])
    );
}

#[test]
fn refusals_name_the_node() {
    let cases: &[(&str, &str)] = &[
        (
            "Resources:\n  S:\n    Type: AWS::Kinesis::Stream\n    Properties: {ShardCunt: 1}\n",
            "Resources.S.Properties.ShardCunt: no such property",
        ),
        (
            "Resources:\n  S:\n    Type: AWS::S3::Bucket\n",
            "Resources.S.Type: AWS::S3::Bucket is not a type",
        ),
        (
            "Resources:\n  S:\n    Type: AWS::Kinesis::Stream\n    Properties: {ShardCount: !Ref Nope}\n",
            "Resources.S.Properties.ShardCount.Ref: no parameter or resource Nope",
        ),
        (
            "Resources:\n  S:\n    Type: AWS::Kinesis::Stream\n    Properties: {Name: !GetAtt S.Arn}\n",
            "Resources.S: a resource cannot depend on itself",
        ),
        (
            "Resources:\n  A:\n    Type: AWS::Kinesis::Stream\n    DependsOn: B\n  B:\n    Type: AWS::Kinesis::Stream\n    DependsOn: A\n",
            "Resources: a circular dependency among A, B",
        ),
        (
            "Resources:\n  S:\n    Type: AWS::Kinesis::Stream\n    Properties: {Name: !GetAtt C.Nope}\n  C:\n    Type: AWS::Kinesis::StreamConsumer\n    Properties: {ConsumerName: c, StreamARN: a}\n",
            "Resources.S.Properties.Name.Fn::GetAtt: AWS::Kinesis::StreamConsumer has no attribute Nope (it has: ConsumerARN",
        ),
        (
            "Resources:\n  S:\n    Type: AWS::Kinesis::Stream\n    Properties: {Name: !If [a, b, c]}\n",
            "Resources.S.Properties.Name.Fn::If: not supported",
        ),
        (
            "Conditions: {}\nResources:\n  S:\n    Type: AWS::Kinesis::Stream\n",
            "Conditions: not supported",
        ),
        (
            "Resources:\n  S:\n    Type: AWS::Kinesis::Stream\n    Properties: {Tags: [{Key: a}]}\n",
            "Resources.S.Properties.Tags.0: a tag needs Key and Value",
        ),
        (
            "Resources:\n  S:\n    Type: AWS::Kinesis::Stream\n    Properties: {StreamModeDetails: {Mode: X}}\n",
            "Resources.S.Properties.StreamModeDetails.Mode: no such property",
        ),
        (
            "Resources:\n  C:\n    Type: AWS::Kinesis::StreamConsumer\n    Properties: {ConsumerName: c}\n",
            "Resources.C.Properties: the required property StreamARN is missing",
        ),
        (
            "Resources:\n  D:\n    Type: AWS::KinesisFirehose::DeliveryStream\n    Properties:\n      ExtendedS3DestinationConfiguration: {BucketARN: b, RoleARN: r, BufferingHints: {SizeInMB: 1}}\n",
            "Resources.D.Properties.ExtendedS3DestinationConfiguration.BufferingHints.SizeInMB: no such property",
        ),
        (
            "Resources:\n  S:\n    Type: AWS::Kinesis::Stream\n    Condition: C\n",
            "Resources.S.Condition: not supported",
        ),
        (
            "Resources:\n  S-1:\n    Type: AWS::Kinesis::Stream\n",
            "Resources.S-1: a logical id is letters and digits",
        ),
        (
            "Resources: {}\n",
            "Resources: the template has no resources",
        ),
        (
            "Parameters:\n  P: {Type: String, Default: x, AllowedValues: [a, b]}\nResources:\n",
            "Parameters.P.Default: \"x\" is not one of the allowed values (a, b)",
        ),
        (
            "Parameters:\n  P: {Type: Numbr}\nResources:\n",
            "Parameters.P.Type: Numbr is not supported",
        ),
        (
            "Outputs:\n  O: {Value: !Ref Nope}\nResources:\n",
            "Outputs.O.Value.Ref: no parameter or resource Nope",
        ),
        (
            "Resources:\n  S:\n    Type: AWS::Kinesis::Stream\n    Properties: {Name: !Sub '${Nope}'}\n",
            "Resources.S.Properties.Name.Fn::Sub: no parameter or resource Nope",
        ),
    ];
    for (text, expected) in cases {
        let text = if text.ends_with("Resources:\n") {
            format!("{text}{STREAM}")
        } else {
            text.to_string()
        };
        let e = read(&text).unwrap_err();
        assert!(
            e.starts_with(expected),
            "{text}\nexpected: {expected}\ngot: {e}"
        );
    }
}

#[test]
fn parameters_are_checked_as_cloudformation_checks_them() {
    let t = read(&format!(
        "Parameters:
  N: {{Type: Number, MinValue: 1, MaxValue: 10}}
  L: {{Type: CommaDelimitedList}}
  T: {{Type: String, AllowedPattern: '[a-z]+', MaxLength: 4, ConstraintDescription: 'lower case, at most 4'}}
Resources:
{STREAM}"
    ))
    .unwrap();
    let p = &t.parameters;
    assert_eq!(p["N"].check("3").unwrap(), serde_json::json!("3"));
    assert_eq!(
        p["N"].check("11").unwrap_err(),
        "11 is out of the allowed range"
    );
    assert_eq!(p["N"].check("x").unwrap_err(), "\"x\" is not a number");
    assert_eq!(p["L"].check("a, b").unwrap(), serde_json::json!(["a", "b"]));
    assert_eq!(p["T"].check("abcde").unwrap_err(), "lower case, at most 4");
    assert_eq!(p["T"].check("ab1").unwrap_err(), "lower case, at most 4");
    assert!(p["T"].check("abc").is_ok());
}

#[test]
fn json_templates_read_as_yaml_ones() {
    let y = read("Resources:\n  S:\n    Type: AWS::Kinesis::Stream\n    Properties: {Name: !Sub '${AWS::StackName}-s'}\n").unwrap();
    let j = read(r#"{"Resources": {"S": {"Type": "AWS::Kinesis::Stream", "Properties": {"Name": {"Fn::Sub": "${AWS::StackName}-s"}}}}}"#).unwrap();
    assert_eq!(y.resources["S"].properties, j.resources["S"].properties);
}
