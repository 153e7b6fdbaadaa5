//! Microsoft Entra ID (Azure AD) audit records, in the Microsoft Graph
//! `directoryAudit` shape and in the diagnostic-settings envelope
//! (`category: "AuditLogs"`, the Graph fields under `properties`).
//!
//! Mapped as Google SecOps' AZURE_AD_AUDIT parser maps them, with one
//! simplification: every target resource's display name goes to
//! `target.resource.name`, where SecOps sorts the first target into
//! `target.user`, `target.group` or `target.resource` by its type.

use super::{Check, Source, Src};

pub static ENTRA_AUDIT_GRAPH: Source = Source {
    id: "entra_audit",
    detect: &[Check::Str(&["activityDisplayName"]), Check::Str(&["loggedByService"])],
    fields: &[
        ("metadata.vendor_name", Src::Const("Microsoft")),
        ("metadata.product_name", Src::Const("Azure AD Directory Audit")),
        ("metadata.product_event_type", Src::Path(&["activityDisplayName"])),
        ("metadata.event_timestamp", Src::Path(&["activityDateTime"])),
        ("metadata.product_log_id", Src::Path(&["id"])),
        ("principal.ip", Src::Ip(&["initiatedBy", "user", "ipAddress"])),
        (
            "principal.user.userid",
            Src::First(&[
                &["initiatedBy", "user", "userPrincipalName"],
                &["initiatedBy", "app", "servicePrincipalName"],
            ]),
        ),
        (
            "principal.user.product_object_id",
            Src::First(&[
                &["initiatedBy", "user", "id"],
                &["initiatedBy", "app", "servicePrincipalId"],
            ]),
        ),
        ("principal.user.user_display_name", Src::Path(&["initiatedBy", "user", "displayName"])),
        ("principal.application", Src::Path(&["initiatedBy", "app", "displayName"])),
        ("target.resource.name", Src::Path(&["targetResources", "displayName"])),
        ("target.resource.product_object_id", Src::Path(&["targetResources", "id"])),
        ("security_result.summary", Src::Path(&["result"])),
        ("security_result.description", Src::Path(&["resultReason"])),
        ("security_result.category_details", Src::Path(&["category"])),
        ("network.session_id", Src::Path(&["correlationId"])),
    ],
};

pub static ENTRA_AUDIT_DIAGNOSTIC: Source = Source {
    id: "entra_audit_diagnostic",
    detect: &[Check::Str(&["operationName"]), Check::OneOf(&[&["category"]], &["AuditLogs"])],
    fields: &[
        ("metadata.vendor_name", Src::Const("Microsoft")),
        ("metadata.product_name", Src::Const("Azure AD Directory Audit")),
        (
            "metadata.product_event_type",
            Src::First(&[&["operationName"], &["properties", "activityDisplayName"]]),
        ),
        ("metadata.event_timestamp", Src::First(&[&["time"], &["properties", "activityDateTime"]])),
        ("metadata.product_log_id", Src::Path(&["properties", "id"])),
        (
            "principal.ip",
            Src::First(&[
                &["callerIpAddress"],
                &["properties", "initiatedBy", "user", "ipAddress"],
            ]),
        ),
        (
            "principal.user.userid",
            Src::First(&[
                &["properties", "initiatedBy", "user", "userPrincipalName"],
                &["properties", "initiatedBy", "app", "servicePrincipalName"],
                &["identity"],
            ]),
        ),
        (
            "principal.user.product_object_id",
            Src::First(&[
                &["properties", "initiatedBy", "user", "id"],
                &["properties", "initiatedBy", "app", "servicePrincipalId"],
            ]),
        ),
        (
            "principal.user.user_display_name",
            Src::Path(&["properties", "initiatedBy", "user", "displayName"]),
        ),
        ("principal.application", Src::Path(&["properties", "initiatedBy", "app", "displayName"])),
        ("target.resource.name", Src::Path(&["properties", "targetResources", "displayName"])),
        ("target.resource.product_object_id", Src::Path(&["properties", "targetResources", "id"])),
        ("security_result.summary", Src::First(&[&["resultType"], &["properties", "result"]])),
        ("security_result.description", Src::Path(&["properties", "resultReason"])),
        ("security_result.category_details", Src::Path(&["category"])),
        ("network.session_id", Src::First(&[&["correlationId"], &["properties", "correlationId"]])),
    ],
};
