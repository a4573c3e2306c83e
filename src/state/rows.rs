//! The JSON stored in the `instances` table, as wire types with the names written out
//! (serde only here), converted by hand to and from the core's values. What is stored
//! can then change only here, on purpose, never by renaming something in the core.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::core::deployed::{Input, Inputs};

/// `instances.inputs`.
#[derive(Serialize, Deserialize)]
pub(super) struct InputsRow {
    #[serde(rename = "bundle")]
    bundle: String,
    #[serde(rename = "version")]
    version: String,
    #[serde(rename = "bundle_digest")]
    bundle_digest: String,
    #[serde(rename = "params")]
    params: Value,
    #[serde(rename = "connections")]
    connections: BTreeMap<String, InputRow>,
}

#[derive(Serialize, Deserialize)]
struct InputRow {
    #[serde(rename = "source")]
    source: String,
    #[serde(rename = "data")]
    data: Option<Value>,
}

impl From<&Inputs> for InputsRow {
    fn from(i: &Inputs) -> InputsRow {
        InputsRow {
            bundle: i.bundle.clone(),
            version: i.version.clone(),
            bundle_digest: i.bundle_digest.clone(),
            params: i.params.clone(),
            connections: i
                .connections
                .iter()
                .map(|(slot, input)| {
                    (
                        slot.clone(),
                        InputRow {
                            source: input.source.clone(),
                            data: input.data.clone(),
                        },
                    )
                })
                .collect(),
        }
    }
}

impl From<InputsRow> for Inputs {
    fn from(r: InputsRow) -> Inputs {
        Inputs {
            bundle: r.bundle,
            version: r.version,
            bundle_digest: r.bundle_digest,
            params: r.params,
            connections: r
                .connections
                .into_iter()
                .map(|(slot, i)| {
                    (
                        slot,
                        Input {
                            source: i.source,
                            data: i.data,
                        },
                    )
                })
                .collect(),
        }
    }
}

pub(super) fn inputs_to_text(inputs: &Inputs) -> String {
    to_text(&InputsRow::from(inputs))
}

pub(super) fn inputs_from_text(text: &str) -> Option<Inputs> {
    serde_json::from_str::<InputsRow>(text)
        .ok()
        .map(Inputs::from)
}

/// Plain JSON columns (artifacts, attributes, sensitive paths): maps and lists of strings
/// whose shape is the value itself.
pub(super) fn to_text<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("maps of JSON values always serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row as capstan has stored it since deploys were introduced reads back unchanged.
    #[test]
    fn stored_rows_read_back() {
        let stored = r#"{"bundle":"aws-vpc","version":"1.2.0","bundle_digest":"b0","params":{"cidr":"10.10.0.0/16"},"connections":{"credentials":{"source":"import","data":{"arn":"a"}},"network":{"source":"si-staging-vpc.network","data":null}}}"#;
        let inputs = inputs_from_text(stored).expect("reads");
        assert_eq!(inputs.connections["network"].data, None);
        assert!(inputs.connections["credentials"].is_import());
        assert_eq!(inputs_to_text(&inputs), stored);
    }
}
