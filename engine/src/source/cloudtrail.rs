//! AWS CloudTrail records: the objects inside a trail file's `Records`.
//!
//! Mapped as Google SecOps' AWS_CLOUDTRAIL parser maps them. Where that
//! parser's choice is not documented (the display name, the affected
//! resource) the table takes the field a detection engineer would look for.

use super::{Check, Source, Src};

pub static CLOUDTRAIL: Source = Source {
    id: "aws_cloudtrail",
    // `eventName` alone is too weak: exports of other tools carry it too.
    detect: &[Check::Str(&["eventName"]), Check::Str(&["eventSource"])],
    fields: &[
        ("metadata.vendor_name", Src::Const("AMAZON")),
        ("metadata.product_name", Src::Const("AWS CloudTrail")),
        ("metadata.product_event_type", Src::Path(&["eventName"])),
        ("metadata.event_timestamp", Src::Path(&["eventTime"])),
        ("metadata.product_log_id", Src::Path(&["eventID"])),
        ("metadata.product_version", Src::Path(&["eventVersion"])),
        ("principal.ip", Src::Ip(&["sourceIPAddress"])),
        ("principal.hostname", Src::NotIp(&["sourceIPAddress"])),
        ("principal.user.userid", Src::Path(&["userIdentity", "arn"])),
        ("principal.user.product_object_id", Src::Path(&["userIdentity", "arn"])),
        (
            "principal.user.user_display_name",
            Src::First(&[
                &["userIdentity", "userName"],
                &["userIdentity", "sessionContext", "sessionIssuer", "userName"],
            ]),
        ),
        ("principal.user.group_identifiers", Src::Path(&["userIdentity", "accountId"])),
        ("principal.resource.type", Src::Path(&["userIdentity", "type"])),
        ("principal.location.name", Src::Path(&["awsRegion"])),
        ("network.http.user_agent", Src::Path(&["userAgent"])),
        ("target.application", Src::Path(&["eventSource"])),
        ("target.resource.name", Src::First(&RESOURCE_NAMES)),
        ("security_result.rule_id", Src::Path(&["errorCode"])),
        ("security_result.description", Src::Path(&["errorMessage"])),
        ("security_result.action", Src::Presence(&["errorCode"], "BLOCK", "ALLOW")),
        // Google's CloudTrail rules read these by key.
        (
            "target.resource.attribute.labels[\"Recipient Account Id\"]",
            Src::Path(&["recipientAccountId"]),
        ),
        ("additional.fields[\"recipientAccountId\"]", Src::Path(&["recipientAccountId"])),
        ("additional.fields[\"accessKeyId\"]", Src::Path(&["userIdentity", "accessKeyId"])),
        ("additional.fields[\"eventType\"]", Src::Path(&["eventType"])),
        ("metadata.log_type", Src::Const("AWS_CLOUDTRAIL")),
    ],
};

/// The affected resource, by the request parameter that names it for the
/// calls that matter most to detections, then the record's `resources`.
static RESOURCE_NAMES: [&[&str]; 14] = [
    &["requestParameters", "userName"],
    &["requestParameters", "roleName"],
    &["requestParameters", "groupName"],
    &["requestParameters", "bucketName"],
    &["requestParameters", "functionName"],
    &["requestParameters", "keyName"],
    &["requestParameters", "name"],
    &["requestParameters", "trailName"],
    &["requestParameters", "detectorId"],
    &["requestParameters", "policyArn"],
    &["requestParameters", "roleArn"],
    &["requestParameters", "instanceId"],
    &["responseElements", "instancesSet", "items", "instanceId"],
    &["resources", "ARN"],
];
