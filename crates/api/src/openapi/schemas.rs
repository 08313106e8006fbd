//! `components.schemas` of a group-version document, generated from the
//! k8s-openapi Rust types through their `schemars` implementations.
//!
//! k8s-openapi's schemas carry no `x-kubernetes-patch-*` extensions, so the
//! documents do not advertise strategic merge patch (see `paths`).

use crate::resource::ResourceInfo;
use k8s_openapi::api::{
    apps::v1 as apps, autoscaling::v1 as autoscaling, coordination::v1 as coordination,
    core::v1 as core, discovery::v1 as discovery, events::v1 as events,
    networking::v1 as networking,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::schemars::generate::{SchemaGenerator, SchemaSettings};
use k8s_openapi::schemars::JsonSchema;
use serde_json::{json, Map, Value};

/// Registers `T` and returns its definition name (`io.k8s.api.core.v1.Service`).
fn reg<T: JsonSchema>(gen: &mut SchemaGenerator) -> String {
    gen.subschema_for::<T>();
    T::schema_name().into_owned()
}

/// Registers the schema of a served kind; `None` for a kind without a Rust type.
fn register_kind(gen: &mut SchemaGenerator, group: &str, kind: &str) -> Option<String> {
    let name = match (group, kind) {
        ("", "Namespace") => reg::<core::Namespace>(gen),
        ("", "Node") => reg::<core::Node>(gen),
        ("", "Pod") => reg::<core::Pod>(gen),
        ("", "Service") => reg::<core::Service>(gen),
        ("", "Endpoints") => reg::<core::Endpoints>(gen),
        ("", "Secret") => reg::<core::Secret>(gen),
        ("", "ConfigMap") => reg::<core::ConfigMap>(gen),
        ("", "Event") => reg::<core::Event>(gen),
        ("", "Binding") => reg::<core::Binding>(gen),
        ("apps", "Deployment") => reg::<apps::Deployment>(gen),
        ("apps", "ReplicaSet") => reg::<apps::ReplicaSet>(gen),
        ("autoscaling", "Scale") => reg::<autoscaling::Scale>(gen),
        ("discovery.k8s.io", "EndpointSlice") => reg::<discovery::EndpointSlice>(gen),
        ("networking.k8s.io", "Ingress") => reg::<networking::Ingress>(gen),
        ("networking.k8s.io", "IngressClass") => reg::<networking::IngressClass>(gen),
        ("events.k8s.io", "Event") => reg::<events::Event>(gen),
        ("coordination.k8s.io", "Lease") => reg::<coordination::Lease>(gen),
        _ => return None,
    };
    Some(name)
}

/// `$ref` to a component schema.
pub(crate) fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "kind": kind, "version": version})
}

/// Definition names the paths refer to, per resource.
pub(crate) struct KindSchemas {
    /// The object schema, e.g. `io.k8s.api.core.v1.Service`.
    pub object: String,
    /// The list schema, e.g. `io.k8s.api.core.v1.ServiceList`.
    pub list: String,
}

/// Names of the shared meta schemas.
pub(crate) const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
pub(crate) const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
pub(crate) const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
pub(crate) const SCALE: &str = "io.k8s.api.autoscaling.v1.Scale";
pub(crate) const BINDING: &str = "io.k8s.api.core.v1.Binding";

/// The generated schemas of one group-version plus the names its paths use.
pub(crate) struct GvSchemas {
    pub schemas: Map<String, Value>,
    /// `(resource, schemas)` in registry order; resources without a Rust type
    /// are left out.
    pub kinds: Vec<(&'static ResourceInfo, KindSchemas)>,
}

/// Generates the component schemas for the resources of one group-version.
pub(crate) fn generate(resources: &[&'static ResourceInfo]) -> GvSchemas {
    let mut gen = SchemaSettings::openapi3().into_generator();
    reg::<meta::Status>(&mut gen);
    reg::<meta::DeleteOptions>(&mut gen);
    reg::<meta::Patch>(&mut gen);
    let list_meta = reg::<meta::ListMeta>(&mut gen);

    let mut kinds = Vec::new();
    let mut extra_gvks: Vec<(String, Value)> = Vec::new();
    for r in resources {
        let Some(object) = register_kind(&mut gen, r.group, r.kind) else {
            continue;
        };
        for sub in r.subresources {
            match *sub {
                "scale" => {
                    reg::<autoscaling::Scale>(&mut gen);
                    extra_gvks.push((SCALE.into(), gvk("autoscaling", "v1", "Scale")));
                }
                "binding" => {
                    reg::<core::Binding>(&mut gen);
                    extra_gvks.push((BINDING.into(), gvk("", "v1", "Binding")));
                }
                _ => {}
            }
        }
        let list = format!("{object}List");
        extra_gvks.push((object.clone(), gvk(r.group, r.version, r.kind)));
        extra_gvks.push((
            list.clone(),
            gvk(r.group, r.version, &format!("{}List", r.kind)),
        ));
        kinds.push((*r, KindSchemas { object, list }));
    }

    let mut schemas = gen.take_definitions(true);
    for (_, k) in &kinds {
        let list = json!({
            "description": format!("{} is a list of {}.", k.list.rsplit('.').next().unwrap_or(""),
                k.object.rsplit('.').next().unwrap_or("")),
            "type": "object",
            "required": ["items"],
            "properties": {
                "apiVersion": {
                    "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources",
                    "type": "string"
                },
                "items": {
                    "description": "List of items.",
                    "type": "array",
                    "items": {"allOf": [schema_ref(&k.object)], "default": {}}
                },
                "kind": {
                    "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
                    "type": "string"
                },
                "metadata": {
                    "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
                    "allOf": [schema_ref(&list_meta)],
                    "default": {}
                }
            }
        });
        schemas.insert(k.list.clone(), list);
    }
    extra_gvks.push((STATUS.into(), gvk("", "v1", "Status")));
    extra_gvks.push((DELETE_OPTIONS.into(), gvk("", "v1", "DeleteOptions")));
    if let Some((r, _)) = kinds.first() {
        if !r.group.is_empty() {
            extra_gvks.push((
                DELETE_OPTIONS.into(),
                gvk(r.group, r.version, "DeleteOptions"),
            ));
        }
    }
    for (name, g) in extra_gvks {
        if let Some(Value::Object(schema)) = schemas.get_mut(&name) {
            let entry = schema
                .entry("x-kubernetes-group-version-kind")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(list) = entry {
                if !list.contains(&g) {
                    list.push(g);
                }
            }
        }
    }
    schemas.sort_keys();
    GvSchemas { schemas, kinds }
}
