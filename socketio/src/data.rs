//! Event arguments: JSON values plus binary attachments, with serde in both directions.
//!
//! Byte buffers may sit anywhere in the arguments. On the wire each becomes a placeholder
//! `{"_placeholder":true,"num":N}` and travels as a separate binary message. Wrap bytes in [`Binary`]
//! to send them, and take [`Binary`] in your types to receive them.

use std::cell::RefCell;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

thread_local! {
    /// Attachments gathered while serializing arguments; `None` outside of [`Data::from_serialize`].
    static OUTGOING: RefCell<Option<Vec<Bytes>>> = const { RefCell::new(None) };
    /// Attachments to resolve placeholders against while deserializing.
    static INCOMING: RefCell<Option<Vec<Bytes>>> = const { RefCell::new(None) };
}

/// Binary data: serialized as a Socket.IO attachment, deserialized from one.
///
/// ```
/// use socketio::{Binary, Data};
/// let data = Data::from_serialize(&("file", Binary::from(vec![1u8, 2, 3]))).unwrap();
/// assert_eq!(data.attachments().len(), 1);
/// let (name, bytes): (String, Binary) = data.parse().unwrap();
/// assert_eq!((name.as_str(), &bytes.0[..]), ("file", &[1u8, 2, 3][..]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Binary(pub Bytes);

impl From<Vec<u8>> for Binary {
    fn from(v: Vec<u8>) -> Self {
        Binary(Bytes::from(v))
    }
}

impl From<Bytes> for Binary {
    fn from(v: Bytes) -> Self {
        Binary(v)
    }
}

#[derive(Serialize, Deserialize)]
struct Placeholder {
    #[serde(rename = "_placeholder")]
    placeholder: bool,
    num: usize,
}

impl Serialize for Binary {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let num = OUTGOING.with(|out| {
            out.borrow_mut().as_mut().map(|list| {
                list.push(self.0.clone());
                list.len() - 1
            })
        });
        match num {
            Some(num) => Placeholder {
                placeholder: true,
                num,
            }
            .serialize(serializer),
            // Outside of an emit (plain serde_json), bytes are an array of numbers.
            None => serializer.collect_seq(self.0.iter()),
        }
    }
}

impl<'de> Deserialize<'de> for Binary {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Placeholder(Placeholder),
            Bytes(Vec<u8>),
        }
        match Repr::deserialize(deserializer)? {
            Repr::Bytes(bytes) => Ok(Binary(Bytes::from(bytes))),
            Repr::Placeholder(p) => INCOMING
                .with(|att| att.borrow().as_ref().and_then(|a| a.get(p.num).cloned()))
                .map(Binary)
                .ok_or_else(|| serde::de::Error::custom("placeholder without attachment")),
        }
    }
}

/// The arguments of an event or an ack: a JSON array and the binary attachments its placeholders
/// refer to.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Data {
    pub(crate) args: Vec<Value>,
    pub(crate) attachments: Vec<Bytes>,
}

impl Data {
    /// Arguments from already-built JSON values and attachments.
    pub fn new(args: Vec<Value>, attachments: Vec<Bytes>) -> Self {
        Data { args, attachments }
    }

    /// Arguments from any serializable value. A tuple or an array is spread into several arguments
    /// (`("a", 1)` is two arguments); anything else is one argument. Wrap a single array argument in
    /// a one-element tuple: `(vec![1, 2],)`. [`Binary`] values anywhere become attachments.
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Result<Data, serde_json::Error> {
        OUTGOING.with(|out| *out.borrow_mut() = Some(Vec::new()));
        let result = serde_json::to_value(value);
        let attachments = OUTGOING
            .with(|out| out.borrow_mut().take())
            .unwrap_or_default();
        let args = match result? {
            Value::Array(items) => items,
            Value::Null => Vec::new(),
            other => vec![other],
        };
        Ok(Data { args, attachments })
    }

    /// The JSON arguments (placeholders where binary data stands).
    pub fn args(&self) -> &[Value] {
        &self.args
    }

    /// The binary attachments, in placeholder order.
    pub fn attachments(&self) -> &[Bytes] {
        &self.attachments
    }

    /// Whether there is no argument.
    pub fn is_empty(&self) -> bool {
        self.args.is_empty()
    }

    /// The arguments as one typed value: a tuple for several arguments, or any type that reads a
    /// JSON array.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        self.with_attachments(|| T::deserialize(Value::Array(self.args.clone())))
    }

    /// Argument `index` as a typed value.
    pub fn arg<T: DeserializeOwned>(&self, index: usize) -> Result<T, serde_json::Error> {
        let value = self.args.get(index).cloned().unwrap_or(Value::Null);
        self.with_attachments(|| T::deserialize(value))
    }

    fn with_attachments<R>(&self, f: impl FnOnce() -> R) -> R {
        INCOMING.with(|att| *att.borrow_mut() = Some(self.attachments.clone()));
        let result = f();
        INCOMING.with(|att| *att.borrow_mut() = None);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_binary_becomes_placeholders() {
        #[derive(Serialize)]
        struct Upload {
            name: &'static str,
            parts: Vec<Binary>,
        }
        let upload = Upload {
            name: "f",
            parts: vec![Binary::from(vec![1u8]), Binary::from(vec![2u8])],
        };
        let data = Data::from_serialize(&(upload,)).unwrap();
        assert_eq!(
            data.args(),
            &[json!({"name": "f", "parts": [
                {"_placeholder": true, "num": 0},
                {"_placeholder": true, "num": 1}
            ]})]
        );
        assert_eq!(data.attachments().len(), 2);
    }

    #[test]
    fn spreading_rules() {
        assert_eq!(Data::from_serialize(&("a", 1)).unwrap().args().len(), 2);
        assert_eq!(Data::from_serialize("a").unwrap().args().len(), 1);
        assert_eq!(
            Data::from_serialize(&(vec![1, 2],)).unwrap().args(),
            &[json!([1, 2])]
        );
        assert!(Data::from_serialize(&()).unwrap().is_empty());
    }

    #[test]
    fn typed_arguments() {
        let data = Data::new(vec![json!("x"), json!(2)], vec![]);
        let (a, b): (String, u32) = data.parse().unwrap();
        assert_eq!((a.as_str(), b), ("x", 2));
        assert_eq!(data.arg::<u32>(1).unwrap(), 2);
        assert!(data.arg::<u32>(0).is_err());
    }

    #[test]
    fn plain_serde_sees_bytes_as_numbers() {
        assert_eq!(
            serde_json::to_value(Binary::from(vec![7u8])).unwrap(),
            json!([7])
        );
    }
}
