//! Azure Activity log records, as diagnostic settings and Event Hub deliver
//! them, and as the Activity Log REST API returns them.
//!
//! `operationName` and `category` are strings in the first shape and
//! `{value, localizedValue}` objects in the second; `identity` is an object
//! of claims or a plain name. Mapped after Google SecOps' AZURE_ACTIVITY
//! parser; `metadata.product_name` follows the name SecOps gives the log
//! type, which its documentation does not confirm for the UDM field.

use super::{Check, Source, Src};

/// The categories of the Activity log schema. Resource logs (storage,
/// Kubernetes audit) and Entra ID logs share the envelope but not these.
const CATEGORIES: &[&str] = &[
    "Administrative",
    "ServiceHealth",
    "ResourceHealth",
    "Alert",
    "Autoscale",
    "Recommendation",
    "Security",
    "Policy",
];

const UPN: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn";
const OBJECT_ID: &str = "http://schemas.microsoft.com/identity/claims/objectidentifier";

pub static AZURE_ACTIVITY: Source = Source {
    id: "azure_activity",
    detect: &[
        Check::OneOf(&[&["operationName"], &["operationName", "value"]], &[]),
        Check::OneOf(&[&["category"], &["category", "value"]], CATEGORIES),
    ],
    fields: &[
        ("metadata.vendor_name", Src::Const("Microsoft")),
        ("metadata.product_name", Src::Const("Azure Activity")),
        (
            "metadata.product_event_type",
            Src::First(&[&["operationName"], &["operationName", "value"]]),
        ),
        ("metadata.event_timestamp", Src::First(&[&["time"], &["eventTimestamp"]])),
        ("metadata.product_log_id", Src::Path(&["eventDataId"])),
        ("principal.ip", Src::Ip(&["callerIpAddress"])),
        (
            "principal.user.userid",
            Src::First(&[
                &["identity", "claims", UPN],
                &["caller"],
                &["identity"],
                &["identity", "authorization", "evidence", "principalId"],
            ]),
        ),
        ("principal.user.product_object_id", Src::Path(&["identity", "claims", OBJECT_ID])),
        ("target.resource.name", Src::Path(&["resourceId"])),
        ("target.resource.product_object_id", Src::Path(&["resourceId"])),
        ("security_result.summary", Src::First(&[&["resultType"], &["status", "value"]])),
        ("security_result.category_details", Src::First(&[&["category"], &["category", "value"]])),
        ("network.session_id", Src::Path(&["correlationId"])),
    ],
};
