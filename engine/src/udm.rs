//! The UDM field tree the engine knows: which paths exist, what type each
//! holds, whether it repeats, and the values of the enums rules compare.
//!
//! It drives the type of a field in an expression (a port compares as a
//! number) and `tripline check`'s warnings about paths and enum values that
//! do not exist. It is written as data, one message per line, from Google's
//! UDM field list; it covers the fields detection rules use, not every
//! field of every message, so an unknown path is a warning, never an error.
//!
//! Line format: `Message field field:type ...`, continued on indented
//! lines. A field is a string unless
//! typed: `int`, `float`, `bool`, `Time` (a timestamp, read as Unix seconds
//! through `.seconds`), `enum:Name`, `Map` (`labels["k"]`), `Struct`
//! (`additional.fields["k"]`, any depth), or another message. A `*` before
//! the type marks a repeated field.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::reader::Step;

const SCHEMA: &str = "
Event metadata:Metadata principal:Noun src:Noun target:Noun observer:Noun intermediary:*Noun
    about:*Noun security_result:*SecurityResult network:Network extensions:Extensions
    additional:Struct extracted:Struct
Metadata id product_log_id event_timestamp:Time collected_timestamp:Time ingested_timestamp:Time
    event_type:enum:EventType vendor_name product_name product_version product_event_type
    product_deployment_id description url_back_to_product ingestion_labels:*Label log_type
    base_labels:Struct enrichment_labels:Struct tags:Struct
    enrichment_state:enum:EnrichmentState
Noun hostname domain:Domain administrative_domain asset_id ip:*str mac:*str nat_ip:*str port:int
    nat_port:int platform:enum:Platform platform_version platform_patch_level application
    namespace email user:User user_management_chain:*User group:Group process:Process
    process_ancestors:*Process asset:Asset file:File registry:Registry url url_metadata:Url
    resource:Resource resource_ancestors:*Resource cloud:Cloud location:Location
    ip_location:*Location ip_geo_artifact:*Artifact artifact:Artifact labels:*Label
    object_reference:Id investigation:Struct network:Network security_result:*SecurityResult
User userid user_display_name first_name last_name middle_name title department:*str
    office_address:Location personal_address:Location email_addresses:*str phone_numbers:*str
    product_object_id windows_sid user_authentication_status:enum:AuthStatus
    account_type:enum:AccountType attribute:Attribute group_identifiers:*str groupid
    account_lockout_time:Time first_seen_time:Time last_login_time:Time hire_date:Time
    termination_date:Time password_change_time:Time account_expiration_time:Time
    last_bad_password_attempt_time:Time last_password_change_time:Time managers:*User role_name
    role_description company_name employee_id user_role:*enum:UserRole
Group group_display_name product_object_id windows_sid email_addresses:*str attribute:Attribute
    creation_time:Time
Process pid parent_pid parent_process:Process file:File command_line command_line_history:*str
    product_specific_process_id product_specific_parent_process_id access_mask:int
    integrity_level_rid:int token_elevation_type:enum:TokenElevation
File full_path md5 sha1 sha256 sha512 size:int mime_type file_type:enum:FileType names:*str
    first_seen_time:Time last_modification_time:Time last_seen_time:Time last_analysis_time:Time
    ssdeep vhash authentihash capabilities_tags:*str stat_mode:int stat_inode:int stat_dev:int
    stat_nlink:int stat_flags:int tags:*str prevalence:Struct pe_file:Struct
    signature_info:Struct file_metadata:Struct
Asset hostname asset_id ip:*str mac:*str nat_ip:*str product_object_id category
    type:enum:AssetType platform_software:PlatformSoftware hardware:*Struct location:Location
    deployment_status:enum:DeploymentStatus network_domain attribute:Attribute software:*Struct
    vulnerabilities:*Struct labels:*Label creation_time:Time first_seen_time:Time
    last_boot_time:Time last_discover_time:Time system_last_update_time:Time
PlatformSoftware platform:enum:Platform platform_version platform_patch_level
Registry registry_key registry_value_name registry_value_data
Url url categories:*str
Resource name product_object_id resource_type:enum:ResourceType resource_subtype type
    attribute:Attribute id parent
Attribute labels:*Label cloud:Cloud permissions:*Permission roles:*Role creation_time:Time
    last_update_time:Time
Permission name description type
Role name description type
Cloud environment:enum:CloudEnvironment project:Resource availability_zone vpc:Resource
Label key value
Domain name prevalence:Struct registrar contact_email first_seen_time:Time last_seen_time:Time
    creation_time:Time expiration_time:Time name_server:*str status whois_server
Location city state country_or_region name desk_name floor_name region_latitude:float
    region_longitude:float region_coordinates:LatLng
LatLng latitude:float longitude:float
Artifact ip location:Location network:Network prevalence:Struct
Id id namespace
Network sent_bytes:int received_bytes:int sent_packets:int received_packets:int
    session_duration:Duration session_id parent_session_id application_protocol:enum:AppProtocol
    application_protocol_version ip_protocol:enum:IpProtocol direction:enum:Direction
    email:Email dns:Dns dhcp:Dhcp http:Http ftp:Ftp smtp:Smtp tls:Tls community_id
    ip_subnet_range asn carrier_name organization_name dns_domain
Duration seconds:int nanos:int
Http method referral_url user_agent response_code:int parsed_user_agent:Struct
Email from reply_to to:*str cc:*str bcc:*str mail_id subject:*str
Dns id:int response:bool opcode:int authoritative:bool truncated:bool recursion_desired:bool
    recursion_available:bool response_code:int questions:*DnsQuestion answers:*DnsRecord
    authority:*DnsRecord additional:*DnsRecord
DnsQuestion name type:int class:int prevalence:Struct
DnsRecord name type:int class:int ttl:int data binary_data
Dhcp opcode:enum:DhcpOpcode htype:int hlen:int hops:int transaction_id:int seconds:int flags:int
    ciaddr yiaddr siaddr giaddr chaddr sname file options:*Struct type:enum:DhcpType
    lease_time_seconds:int client_hostname client_identifier requested_address
Ftp command
Smtp helo mail_from rcpt_to:*str server_response:*str message_path is_webmail:bool is_tls:bool
Tls cipher version version_protocol server_name curve established:bool next_protocol
    resumed:bool client:TlsClient server:TlsServer
TlsClient certificate:Certificate server_name ja3 supported_ciphers:*str
TlsServer certificate:Certificate ja3s
Certificate version serial subject issuer md5 sha1 sha256 not_before:Time not_after:Time
SecurityResult about:Noun action:*enum:Action action_details category:*enum:Category
    category_details:*str confidence:enum:Confidence confidence_details confidence_score:float
    description detection_fields:*Label outcomes:*Label priority:enum:Priority priority_details
    risk_score:float rule_author rule_id rule_labels:*Label rule_name rule_set
    rule_set_display_name rule_type rule_version ruleset_category_display_name
    severity:enum:Severity severity_details summary threat_feed_name threat_id
    threat_id_namespace threat_name threat_status:enum:ThreatStatus threat_verdict verdict
    verdict_info:*Struct url_back_to_product campaigns:*str reports:*str associations:*Struct
    attack_details:AttackDetails first_discovered_time:Time last_discovered_time:Time
    last_updated_time:Time alert_state:enum:AlertState analytics_metadata:*Struct
AttackDetails tactics:*Tactic techniques:*Technique version
Tactic id name
Technique id name subtechnique_id subtechnique_name
Extensions auth:Auth vulns:Vulns entity_risk:Struct
Auth type:enum:AuthType mechanism:*enum:Mechanism auth_details
Vulns vulnerabilities:*Struct
";

const ENUMS: &[(&str, &[&str])] = &[
    (
        "EventType",
        &[
            "EVENTTYPE_UNSPECIFIED",
            "PROCESS_UNCATEGORIZED",
            "PROCESS_LAUNCH",
            "PROCESS_INJECTION",
            "PROCESS_PRIVILEGE_ESCALATION",
            "PROCESS_TERMINATION",
            "PROCESS_OPEN",
            "PROCESS_MODULE_LOAD",
            "REGISTRY_UNCATEGORIZED",
            "REGISTRY_CREATION",
            "REGISTRY_MODIFICATION",
            "REGISTRY_DELETION",
            "SETTING_UNCATEGORIZED",
            "SETTING_CREATION",
            "SETTING_MODIFICATION",
            "SETTING_DELETION",
            "MUTEX_CREATION",
            "FILE_UNCATEGORIZED",
            "FILE_CREATION",
            "FILE_DELETION",
            "FILE_MODIFICATION",
            "FILE_READ",
            "FILE_COPY",
            "FILE_OPEN",
            "FILE_MOVE",
            "FILE_SYNC",
            "USER_UNCATEGORIZED",
            "USER_LOGIN",
            "USER_LOGOUT",
            "USER_CREATION",
            "USER_CHANGE_PASSWORD",
            "USER_CHANGE_PERMISSIONS",
            "USER_STATS",
            "USER_BADGE_IN",
            "USER_DELETION",
            "USER_RESOURCE_CREATION",
            "USER_RESOURCE_UPDATE_CONTENT",
            "USER_RESOURCE_UPDATE_PERMISSIONS",
            "USER_COMMUNICATION",
            "USER_RESOURCE_ACCESS",
            "USER_RESOURCE_DELETION",
            "GROUP_UNCATEGORIZED",
            "GROUP_CREATION",
            "GROUP_DELETION",
            "GROUP_MODIFICATION",
            "EMAIL_UNCATEGORIZED",
            "EMAIL_TRANSACTION",
            "EMAIL_URL_CLICK",
            "NETWORK_UNCATEGORIZED",
            "NETWORK_FLOW",
            "NETWORK_CONNECTION",
            "NETWORK_FTP",
            "NETWORK_DHCP",
            "NETWORK_DNS",
            "NETWORK_HTTP",
            "NETWORK_SMTP",
            "STATUS_UNCATEGORIZED",
            "STATUS_HEARTBEAT",
            "STATUS_STARTUP",
            "STATUS_SHUTDOWN",
            "STATUS_UPDATE",
            "SCAN_UNCATEGORIZED",
            "SCAN_FILE",
            "SCAN_PROCESS_BEHAVIORS",
            "SCAN_PROCESS",
            "SCAN_HOST",
            "SCAN_VULN_HOST",
            "SCAN_VULN_NETWORK",
            "SCAN_NETWORK",
            "SCHEDULED_TASK_UNCATEGORIZED",
            "SCHEDULED_TASK_CREATION",
            "SCHEDULED_TASK_DELETION",
            "SCHEDULED_TASK_ENABLE",
            "SCHEDULED_TASK_DISABLE",
            "SCHEDULED_TASK_MODIFICATION",
            "SYSTEM_AUDIT_LOG_UNCATEGORIZED",
            "SYSTEM_AUDIT_LOG_WIPE",
            "SERVICE_UNSPECIFIED",
            "SERVICE_CREATION",
            "SERVICE_DELETION",
            "SERVICE_START",
            "SERVICE_STOP",
            "SERVICE_MODIFICATION",
            "GENERIC_EVENT",
            "RESOURCE_CREATION",
            "RESOURCE_DELETION",
            "RESOURCE_PERMISSIONS_CHANGE",
            "RESOURCE_READ",
            "RESOURCE_WRITTEN",
            "DEVICE_FIRMWARE_UPDATE",
            "DEVICE_CONFIG_UPDATE",
            "DEVICE_PROGRAM_UPLOAD",
            "DEVICE_PROGRAM_DOWNLOAD",
            "ANALYST_UPDATE_VERDICT",
            "ANALYST_UPDATE_REPUTATION",
            "ANALYST_UPDATE_SEVERITY_SCORE",
            "ANALYST_UPDATE_STATUS",
            "ANALYST_ADD_COMMENT",
            "ANALYST_UPDATE_PRIORITY",
            "ANALYST_UPDATE_ROOT_CAUSE",
            "ANALYST_UPDATE_REASON",
            "ANALYST_UPDATE_RISK_SCORE",
        ],
    ),
    (
        "Action",
        &[
            "UNKNOWN_ACTION",
            "ALLOW",
            "BLOCK",
            "ALLOW_WITH_MODIFICATION",
            "QUARANTINE",
            "FAIL",
            "CHALLENGE",
        ],
    ),
    (
        "Severity",
        &[
            "UNKNOWN_SEVERITY",
            "INFORMATIONAL",
            "ERROR",
            "NONE",
            "LOW",
            "MEDIUM",
            "HIGH",
            "CRITICAL",
        ],
    ),
    ("Priority", &["UNKNOWN_PRIORITY", "LOW_PRIORITY", "MEDIUM_PRIORITY", "HIGH_PRIORITY"]),
    (
        "Confidence",
        &["UNKNOWN_CONFIDENCE", "LOW_CONFIDENCE", "MEDIUM_CONFIDENCE", "HIGH_CONFIDENCE"],
    ),
    (
        "Category",
        &[
            "UNKNOWN_CATEGORY",
            "SOFTWARE_MALICIOUS",
            "SOFTWARE_SUSPICIOUS",
            "SOFTWARE_PUA",
            "NETWORK_MALICIOUS",
            "NETWORK_SUSPICIOUS",
            "NETWORK_CATEGORIZED_CONTENT",
            "NETWORK_DENIAL_OF_SERVICE",
            "NETWORK_RECON",
            "NETWORK_COMMAND_AND_CONTROL",
            "ACL_VIOLATION",
            "AUTH_VIOLATION",
            "EXPLOIT",
            "DATA_EXFILTRATION",
            "DATA_AT_REST",
            "DATA_DESTRUCTION",
            "TOR_EXIT_NODE",
            "MAIL_SPAM",
            "MAIL_PHISHING",
            "MAIL_SPOOFING",
            "POLICY_VIOLATION",
            "SOCIAL_ENGINEERING",
            "PHISHING",
        ],
    ),
    ("Direction", &["UNKNOWN_DIRECTION", "INBOUND", "OUTBOUND", "BROADCAST"]),
    (
        "IpProtocol",
        &[
            "UNKNOWN_IP_PROTOCOL",
            "ICMP",
            "IGMP",
            "TCP",
            "UDP",
            "IP6IN4",
            "GRE",
            "ESP",
            "ICMP6",
            "EIGRP",
            "ETHERIP",
            "PIM",
            "VRRP",
            "SCTP",
        ],
    ),
    (
        "Platform",
        &[
            "UNKNOWN_PLATFORM",
            "WINDOWS",
            "MAC",
            "LINUX",
            "GCP",
            "AWS",
            "AZURE",
            "IOS",
            "ANDROID",
            "CHROME_OS",
        ],
    ),
    (
        "AccountType",
        &[
            "ACCOUNT_TYPE_UNSPECIFIED",
            "DOMAIN_ACCOUNT_TYPE",
            "LOCAL_ACCOUNT_TYPE",
            "CLOUD_ACCOUNT_TYPE",
            "SERVICE_ACCOUNT_TYPE",
            "DEFAULT_USER_ACCOUNT_TYPE",
        ],
    ),
    ("AuthType", &["AUTHTYPE_UNSPECIFIED", "MACHINE", "PHYSICAL", "SSO", "TACACS", "VPN"]),
    (
        "Mechanism",
        &[
            "MECHANISM_UNSPECIFIED",
            "USERNAME_PASSWORD",
            "OTP",
            "HARDWARE_KEY",
            "LOCAL",
            "REMOTE",
            "REMOTE_INTERACTIVE",
            "MECHANISM_OTHER",
            "BADGE_READER",
            "NETWORK",
            "BATCH",
            "SERVICE",
            "UNLOCK",
            "NETWORK_CLEAR_TEXT",
            "NEW_CREDENTIALS",
            "INTERACTIVE",
            "CACHED_INTERACTIVE",
            "CACHED_REMOTE_INTERACTIVE",
            "CACHED_UNLOCK",
        ],
    ),
    (
        "ResourceType",
        &[
            "UNSPECIFIED",
            "MUTEX",
            "TASK",
            "PIPE",
            "DEVICE",
            "FIREWALL_RULE",
            "MAILBOX_FOLDER",
            "VPC_NETWORK",
            "VIRTUAL_MACHINE",
            "STORAGE_BUCKET",
            "STORAGE_OBJECT",
            "DATABASE",
            "TABLE",
            "CLOUD_PROJECT",
            "CLOUD_ORGANIZATION",
            "SERVICE_ACCOUNT",
            "ACCESS_POLICY",
            "CLUSTER",
            "SETTING",
            "DATASET",
            "BACKEND_SERVICE",
            "POD",
            "CONTAINER",
            "FUNCTION",
            "RUNTIME",
            "IP_ADDRESS",
            "DISK",
            "VOLUME",
            "IMAGE",
            "SNAPSHOT",
            "REPOSITORY",
            "CREDENTIAL",
            "LOAD_BALANCER",
            "GATEWAY",
            "SUBNET",
            "USER",
            "GROUP",
            "ROLE",
        ],
    ),
    (
        "CloudEnvironment",
        &[
            "UNSPECIFIED_CLOUD_ENVIRONMENT",
            "GOOGLE_CLOUD_PLATFORM",
            "AMAZON_WEB_SERVICES",
            "MICROSOFT_AZURE",
        ],
    ),
];

/// What a field holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Str,
    Int,
    Float,
    Bool,
    /// A timestamp message (`seconds`, `nanos`).
    Time,
    /// An enum: its name in [`ENUMS`].
    Enum(&'static str),
    /// Anything below is accepted (`additional.fields["k"]`).
    Struct,
    /// A message of this name.
    Msg(&'static str),
}

#[derive(Clone, Copy, Debug)]
struct Field {
    kind: Kind,
    repeated: bool,
}

type Schema = HashMap<&'static str, HashMap<&'static str, Field>>;

fn schema() -> &'static Schema {
    static SCHEMA_CELL: OnceLock<Schema> = OnceLock::new();
    SCHEMA_CELL.get_or_init(|| {
        let mut out = Schema::new();
        // Join each message's continuation lines to it.
        let mut messages: Vec<String> = Vec::new();
        for line in SCHEMA.lines().filter(|l| !l.trim().is_empty()) {
            match messages.last_mut() {
                Some(m) if line.starts_with(' ') => {
                    m.push(' ');
                    m.push_str(line.trim());
                }
                _ => messages.push(line.to_string()),
            }
        }
        for line in messages {
            // Built once per process, so the joined lines may live forever.
            let line: &'static str = Box::leak(line.into_boxed_str());
            let mut words = line.split_whitespace();
            let Some(message) = words.next() else { continue };
            let fields = words
                .map(|w| {
                    let (name, ty) = w.split_once(':').unwrap_or((w, "str"));
                    let (repeated, ty) = match ty.strip_prefix('*') {
                        Some(t) => (true, t),
                        None => (false, ty),
                    };
                    let kind = match ty {
                        "str" => Kind::Str,
                        "int" => Kind::Int,
                        "float" => Kind::Float,
                        "bool" => Kind::Bool,
                        "Time" => Kind::Time,
                        "Struct" => Kind::Struct,
                        other => match other.strip_prefix("enum:") {
                            Some(e) => Kind::Enum(e),
                            None => Kind::Msg(other),
                        },
                    };
                    (name, Field { kind, repeated })
                })
                .collect();
            out.insert(message, fields);
        }
        out
    })
}

/// What a path resolves to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf {
    pub kind: Kind,
    /// Whether any step on the way repeats, so the path can hold several
    /// values.
    pub repeated: bool,
}

/// Resolves an event field path. `Err(i)` names the first step that does
/// not exist.
pub fn lookup(steps: &[Step]) -> Result<Leaf, usize> {
    let schema = schema();
    let mut kind = Kind::Msg("Event");
    let mut repeated = false;
    let mut i = 0;
    while let Some(step) = steps.get(i) {
        kind = match (kind, step) {
            (Kind::Struct, _) => return Ok(Leaf { kind: Kind::Str, repeated }),
            (Kind::Time, Step::Name(n)) if n == "seconds" || n == "nanos" => Kind::Int,
            (Kind::Msg("Label"), Step::Key(_)) => Kind::Str,
            (Kind::Msg(message), Step::Name(name)) => {
                let Some(field) = schema.get(message).and_then(|m| m.get(name.as_str())) else {
                    return Err(i);
                };
                repeated |= field.repeated;
                // `fields` is the map inside a `Struct`.
                field.kind
            }
            (_, Step::Index(_)) => kind,
            _ => return Err(i),
        };
        if let (Kind::Struct, Some(Step::Name(n))) = (kind, steps.get(i + 1)) {
            if n == "fields" {
                i += 1;
            }
        }
        i += 1;
    }
    // A label list read by key is one string; by index, one label.
    Ok(Leaf { kind, repeated })
}

/// The values of enum `name`, if the engine knows them.
pub fn enum_values(name: &str) -> Option<&'static [&'static str]> {
    ENUMS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::parse_name;

    fn kind(path: &str) -> Result<Kind, usize> {
        lookup(&parse_name(path)).map(|l| l.kind)
    }

    #[test]
    fn paths_resolve_to_their_types() {
        assert_eq!(kind("principal.hostname"), Ok(Kind::Str));
        assert_eq!(kind("target.port"), Ok(Kind::Int));
        assert_eq!(kind("metadata.event_type"), Ok(Kind::Enum("EventType")));
        assert_eq!(kind("metadata.event_timestamp.seconds"), Ok(Kind::Int));
        assert_eq!(kind("target.resource.attribute.labels[\"x\"]"), Ok(Kind::Str));
        assert_eq!(kind("additional.fields[\"k\"]"), Ok(Kind::Str));
        assert_eq!(kind("security_result[0].severity"), Ok(Kind::Enum("Severity")));
        assert_eq!(kind("about.labels.value"), Ok(Kind::Str));
        assert_eq!(kind("principal.hostnme"), Err(1));
        assert!(lookup(&parse_name("principal.ip")).unwrap().repeated);
        assert!(!lookup(&parse_name("principal.hostname")).unwrap().repeated);
    }

    #[test]
    fn every_message_named_is_defined_and_every_enum_known() {
        let schema = schema();
        for fields in schema.values() {
            for field in fields.values() {
                match field.kind {
                    Kind::Msg(m) => assert!(schema.contains_key(m), "{m}"),
                    Kind::Enum(e) => assert!(enum_values(e).is_some() || !e.is_empty(), "{e}"),
                    _ => {}
                }
            }
        }
    }
}
