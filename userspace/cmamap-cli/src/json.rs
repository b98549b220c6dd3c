//! The `--json` lines: one JSON object per command, fields in the order written.

use serde::Serialize;
use serde_json::Value;

use crate::error::CliError;

/// Prints `value` as one line of JSON.
pub fn print_json(value: &impl Serialize) -> Result<(), CliError> {
    let line = serde_json::to_string(value).map_err(|e| CliError::Other(format!("json: {e}")))?;
    println!("{line}");
    Ok(())
}

/// `value` as a JSON object, to add fields to (they keep their order).
pub fn json_object(value: &impl Serialize) -> Result<serde_json::Map<String, Value>, CliError> {
    match serde_json::to_value(value) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => Err(CliError::Other(format!("json: not an object: {other}"))),
        Err(e) => Err(CliError::Other(format!("json: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use cmamap::{abi, meminfo, Stat};
    use serde_json::{json, Value};

    use super::*;
    use crate::report::sample_info as info;

    // The --json lines as the hand-written writer printed them before serde did, plus the
    // device mappings (ABI 2).
    #[test]
    fn info_json_keeps_its_fields_and_order() {
        let mut out = json_object(&info()).unwrap();
        assert_eq!(
            serde_json::to_string(&out).unwrap(),
            r#"{"id":3,"size":2097152,"strategy":"page","offset":206158430208,"phys_addr":0,"persistent":true,"owner":"module","owner_tgid":77,"map_count":1,"dma_mappings":0}"#
        );
        out.insert("freed_at_exit".into(), json!(false));
        out.insert("hold_seconds".into(), json!(None::<u64>));
        let line = serde_json::to_string(&out).unwrap();
        assert!(
            line.ends_with(
                r#""map_count":1,"dma_mappings":0,"freed_at_exit":false,"hold_seconds":null}"#
            ),
            "{line}"
        );
    }

    #[test]
    fn stat_json_keeps_its_fields_and_order() {
        let stat = Stat::from_abi(&abi::StatArgs {
            abi_version: 4,
            default_strategy: abi::STRATEGY_REMAP,
            page_size: 4096,
            max_bytes_per_file: 1 << 30,
            max_bytes_total: 2 << 30,
            bytes_total: 8192,
            bytes_file: 4096,
            blocks_total: 2,
            blocks_file: 1,
            ..Default::default()
        });
        assert_eq!(
            serde_json::to_string(&stat).unwrap(),
            r#"{"abi_version":4,"default_strategy":"remap","page_size":4096,"max_bytes_per_file":1073741824,"max_bytes_total":2147483648,"bytes_total":8192,"blocks_total":2,"bytes_file":4096,"blocks_file":1}"#
        );
        let areas = vec![meminfo::CmaArea {
            name: "reserved".into(),
            total_pages: Some(16384),
            available_pages: None,
        }];
        assert_eq!(
            json!(areas).to_string(),
            r#"[{"name":"reserved","total_pages":16384,"available_pages":null}]"#
        );
    }

    #[test]
    fn objects_keep_their_order_and_a_reader_pastes_back_unchanged() {
        let reader =
            r#"{"id":9,"offset":0,"length":4096,"address":"0x7f00","filled":null,"verified":true}"#;
        let value: Value = serde_json::from_str(reader).unwrap();
        let line = json!({ "id": 9, "persistent": true, "reader": value, "verified": true });
        assert_eq!(
            line.to_string(),
            format!(r#"{{"id":9,"persistent":true,"reader":{reader},"verified":true}}"#)
        );
        assert_eq!(
            json!({ "name": "a\"b\\c\n\u{1}" }).to_string(),
            r#"{"name":"a\"b\\c\n\u0001"}"#
        );
    }
}
