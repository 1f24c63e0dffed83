//! The [`Properties`] handle: absent lists allocate nothing and read as all-`None`, the first
//! write allocates, equality ignores whether an empty list is allocated, and PUBLISH stays small.

use bytes::{Bytes, BytesMut};

use super::*;

#[test]
fn absent_properties_read_as_none_and_decode_without_a_box() {
    let p = Properties::default();
    assert_eq!(p.topic_alias, None);
    assert!(p.user_properties.is_empty());
    assert!(p.is_empty());
    let mut wire = Bytes::from_static(&[0x00, 0xAA]);
    let d = Properties::read(&mut wire, PropertyContext::Publish).unwrap_or_else(|e| panic!("{e}"));
    assert!(d.is_empty());
    assert_eq!(d, p);
    assert_eq!(&wire[..], &[0xAA]);
    assert_eq!(
        std::mem::size_of::<Properties>(),
        std::mem::size_of::<usize>()
    );
}

#[test]
fn writes_allocate_and_round_trip() {
    let mut p = Properties::default();
    p.message_expiry_interval = Some(7);
    p.user_properties.push((
        MqttString::try_from("k").unwrap_or_default(),
        MqttString::try_from("v").unwrap_or_default(),
    ));
    assert!(!p.is_empty());
    let mut out = BytesMut::new();
    p.write(&mut out, PropertyContext::Publish)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.len(), p.wire_len(PropertyContext::Publish).unwrap_or(0));
    let back = Properties::read(&mut out.freeze(), PropertyContext::Publish)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back, p);
    // An allocated list that was emptied again equals an absent one.
    let mut q = Properties::default();
    q.topic_alias = Some(1);
    q.topic_alias = None;
    assert_eq!(q, Properties::default());
    assert!(q.is_empty());
    let mut empty = BytesMut::new();
    q.write(&mut empty, PropertyContext::Publish)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(&empty[..], &[0x00]);
}

#[test]
fn publish_is_small() {
    assert!(
        std::mem::size_of::<Publish>() <= 96,
        "{}",
        std::mem::size_of::<Publish>()
    );
}
