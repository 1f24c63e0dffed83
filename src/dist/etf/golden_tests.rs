//! The codec against bytes made by a stock OTP 25 (`term_to_binary/1,2` printed with `~w`, see
//! `golden_otp25.txt`): every term decodes, `minor_version 2` output re-encodes byte for byte,
//! and the default (Latin-1 atom) output decodes to the same term.
use std::collections::HashMap;

use bytes::Bytes;

use super::*;

/// The float `gold.erl` encodes (close to pi by accident of choice, not meant as pi).
#[allow(clippy::approx_constant)]
const GOLD_FLOAT: f64 = 3.14159;

fn golden() -> HashMap<String, Bytes> {
    include_str!("golden_otp25.txt")
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once(' ')?;
            let inner = rest.strip_prefix("<<")?.strip_suffix(">>")?;
            let bytes: Vec<u8> = inner.split(',').map(|b| b.parse().unwrap()).collect();
            Some((name.to_string(), Bytes::from(bytes)))
        })
        .collect()
}

fn get(g: &HashMap<String, Bytes>, name: &str) -> Term {
    decode(&g[name]).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_golden_term_decodes_and_reencodes() {
    let g = golden();
    assert!(g.len() > 70, "golden file parsed: {}", g.len());
    for (name, bytes) in &g {
        let t = decode(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        if let Some(base) = name.strip_suffix("_v1") {
            assert_eq!(t, get(&g, base), "{name} decodes like {base}");
        } else if !matches!(name.as_str(), "compressed" | "float_v0") {
            assert_eq!(
                &term_to_binary(&t)[..],
                &bytes[..],
                "{name} re-encodes identically"
            );
        }
    }
}

#[test]
fn compressed_and_old_float() {
    let g = golden();
    assert_eq!(get(&g, "compressed"), get(&g, "compressed_plain"));
    assert_eq!(get(&g, "float_v0"), Term::Float(GOLD_FLOAT));
}

#[test]
fn golden_terms_have_the_right_values() {
    let g = golden();
    let node = Atom::new("goldn@vm");
    assert_eq!(get(&g, "atom"), Term::atom("ok"));
    assert_eq!(get(&g, "utf8atom"), Term::atom("hé😀"));
    assert_eq!(get(&g, "empty_atom"), Term::atom(""));
    assert_eq!(get(&g, "neg_int"), Term::Int(-5));
    assert_eq!(get(&g, "int_min32"), Term::Int(-2147483648));
    assert_eq!(get(&g, "big_pos"), Term::Int(1 << 40));
    assert_eq!(get(&g, "i64max"), Term::Int(i64::MAX));
    assert_eq!(get(&g, "i64min"), Term::Int(i64::MIN));
    assert_eq!(get(&g, "bigger"), Term::int(1i128 << 64));
    assert_eq!(get(&g, "huge_neg").as_u64(), None);
    assert_eq!(get(&g, "float"), Term::Float(GOLD_FLOAT));
    assert_eq!(get(&g, "float_big"), Term::Float(1.0e300));
    assert_eq!(get(&g, "empty_bin"), Term::binary(b""));
    assert_eq!(
        get(&g, "bits"),
        Term::BitBinary {
            bytes: Bytes::from_static(&[0b0010_0000]),
            bits: 3
        }
    );
    assert_eq!(
        get(&g, "string"),
        Term::list([Term::Int(97), Term::Int(98), Term::Int(99)])
    );
    assert_eq!(
        get(&g, "unicode_list"),
        Term::list([Term::Int(1000), Term::Int(2000)])
    );
    assert_eq!(
        get(&g, "list"),
        Term::list([Term::Int(1), Term::Int(300), Term::atom("a")])
    );
    assert_eq!(
        get(&g, "improper2"),
        Term::improper_list([Term::atom("a"), Term::atom("b")], Term::atom("c"))
    );
    let r = get(&g, "ref").as_ref().unwrap();
    assert_eq!(r.node, node);
    assert_eq!(r.ids().len(), 3);
    let imp = get(&g, "improper");
    let (elems, tail) = imp.as_improper_list().unwrap();
    assert_eq!(elems, &[Term::atom("alias")]);
    assert_eq!(tail.as_ref(), Some(r));
    let t = get(&g, "tuple");
    let [tag, topic, payload] = t.as_tuple_n::<3>().unwrap();
    assert!(tag.is_atom("t"));
    assert_eq!(topic.as_binary().map(|b| &b[..]), Some(&b"a/b"[..]));
    assert_eq!(payload.as_binary().map(|b| b.len()), Some(64));
    assert_eq!(get(&g, "empty_tuple"), Term::tuple(vec![]));
    assert_eq!(
        get(&g, "large_tuple").as_tuple().map(|t| t.len()),
        Some(300)
    );
    let m = get(&g, "map_tuple_keys");
    let k2 = Term::tuple([Term::atom("k"), Term::Int(2)]);
    assert_eq!(m.map_get(&k2), Some(&Term::list([Term::atom("w")])));
    assert_eq!(get(&g, "empty_map"), Term::map(vec![]));
    let p = get(&g, "pid").as_pid().unwrap();
    assert_eq!((p.node, p.id, p.serial), (node, 123, 4));
    assert!(matches!(get(&g, "port"), Term::Port(Port { node: n, .. }) if n == node));
    assert_eq!(
        get(&g, "export"),
        Term::Export {
            module: Atom::new("lists"),
            function: Atom::new("map"),
            arity: 2
        }
    );
    let Term::Fun(f) = get(&g, "fun1") else {
        panic!("fun1 is not a fun")
    };
    assert_eq!((f.module, f.arity), (Atom::new("gold"), 1));
    assert_eq!(f.free_vars, vec![Term::Pid(p)]);
}

#[test]
fn hostile_lengths_fail_fast() {
    // LARGE_TUPLE_EXT of arity 2^32-1 in a 10-byte frame.
    let b = Bytes::from_static(&[131, 105, 255, 255, 255, 255, 106, 106, 106, 106]);
    assert_eq!(decode(&b), Err(DecodeError::Truncated));
    let b = Bytes::from_static(&[131, 108, 255, 255, 255, 255, 106]);
    assert_eq!(decode(&b), Err(DecodeError::Truncated));
    let b = Bytes::from_static(&[131, 116, 127, 255, 255, 255, 106, 106]);
    assert_eq!(decode(&b), Err(DecodeError::Truncated));
    let b = Bytes::from_static(&[131, 109, 255, 255, 255, 255, 0]);
    assert_eq!(decode(&b), Err(DecodeError::Truncated));
    let b = Bytes::from_static(&[131, 111, 255, 255, 255, 255, 0, 1]);
    assert_eq!(decode(&b), Err(DecodeError::Truncated));
    // A compressed term declaring 4 GiB.
    let b = Bytes::from_static(&[131, 80, 255, 255, 255, 255, 120, 156]);
    assert!(matches!(decode(&b), Err(DecodeError::TooLarge { .. })));
    // Declared size that does not match the data.
    let mut c = golden()["compressed"].to_vec();
    c[5] += 1;
    assert_eq!(decode(&Bytes::from(c)), Err(DecodeError::BadCompression));
}

#[test]
fn malformed_terms_are_errors() {
    let cases: &[&[u8]] = &[
        &[],
        &[130, 106],
        &[131],
        &[131, 106, 0],
        &[131, 200],
        &[131, 82, 0],
        &[131, 119, 2, 0xff, 0xfe],
        &[131, 90, 0, 0, 119, 0, 0, 0, 0, 0],
        &[131, 90, 0, 6, 119, 0, 0, 0, 0, 0],
        &[131, 77, 0, 0, 0, 1, 0, 1],
        &[131, 77, 0, 0, 0, 1, 9, 1],
        &[131, 113, 119, 1, 97, 119, 1, 98, 98, 0, 0, 0, 1],
        &[131, 99, b'x', 0],
    ];
    for c in cases {
        assert!(
            decode(&Bytes::copy_from_slice(c)).is_err(),
            "{c:?} must not decode"
        );
    }
}

fn nested(depth: usize) -> Vec<u8> {
    let mut b = vec![131];
    for _ in 0..depth {
        b.extend_from_slice(&[104, 1]);
    }
    b.push(106);
    b
}

#[test]
fn depth_is_bounded_and_deep_terms_do_not_overflow() {
    let limits = DecodeLimits {
        max_depth: 100,
        ..DecodeLimits::default()
    };
    let ok = Bytes::from(nested(100));
    assert!(decode_with(&ok, &[], &limits).is_ok());
    let deep = Bytes::from(nested(101));
    assert_eq!(
        decode_with(&deep, &[], &limits),
        Err(DecodeError::TooDeep(100))
    );
    // At the default limit, on a 2 MiB stack (tokio's worker default): decode, encode, compare
    // and drop all survive.
    let handle = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let b = Bytes::from(nested(DecodeLimits::default().max_depth));
            let t = decode(&b).unwrap();
            assert_eq!(term_to_binary(&t), b);
            drop(t);
            let too_deep = Bytes::from(nested(DecodeLimits::default().max_depth + 1));
            assert!(matches!(decode(&too_deep), Err(DecodeError::TooDeep(_))));
        })
        .unwrap();
    handle.join().unwrap();
}

#[test]
fn long_lists_of_bytes_are_not_strings() {
    let t = Term::list(vec![Term::Int(7); 65536]);
    let b = term_to_binary(&t);
    assert_eq!(&b[..6], &[131, 108, 0, 1, 0, 0]);
    assert_eq!(decode(&b).unwrap(), t);
    let t = Term::list(vec![Term::Int(7); 65535]);
    assert_eq!(term_to_binary(&t)[1], tags::STRING_EXT);
}

#[test]
fn nested_list_tails_flatten() {
    // [a | [b]] written as nested LIST_EXTs is [a, b].
    let b = Bytes::from_static(&[
        131, 108, 0, 0, 0, 1, 119, 1, 97, 108, 0, 0, 0, 1, 119, 1, 98, 106,
    ]);
    assert_eq!(
        decode(&b).unwrap(),
        Term::list([Term::atom("a"), Term::atom("b")])
    );
}

#[test]
fn binaries_are_zero_copy() {
    let g = golden();
    let buf = &g["tuple"];
    let t = decode(buf).unwrap();
    let payload = t.element(2).and_then(Term::as_binary).unwrap();
    let start = buf.as_ptr() as usize;
    let p = payload.as_ptr() as usize;
    assert!(
        p >= start && p < start + buf.len(),
        "payload points into the input buffer"
    );
}
