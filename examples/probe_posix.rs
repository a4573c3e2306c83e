fn main() {
    for p in [
        "^[^[:space:]]+$",
        "^[[:alnum:]-]+$",
        "^[a-z]+$",
        r"^\p{L}+$",
        "^(?!x)a$",
        "[[:space:]]",
    ] {
        let s = serde_json::json!({"type": "string", "pattern": p});
        let r = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft7)
            .build(&s);
        match r {
            Ok(v) => println!(
                "{p}: ok; 'a b' valid={} 'ab' valid={}",
                v.is_valid(&serde_json::json!("a b")),
                v.is_valid(&serde_json::json!("ab"))
            ),
            Err(e) => println!(
                "{p}: ERR {e} // path {:?} kind {:?}",
                e.instance_path().to_string(),
                e.kind()
            ),
        }
    }
}
