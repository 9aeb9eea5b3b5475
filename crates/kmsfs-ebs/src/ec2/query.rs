//! The parameters of an EC2 Query request: `application/x-www-form-urlencoded`
//! pairs (a POST body or a GET query string), and the typed accessors the
//! EC2 protocol's serialisation calls for.
//!
//! botocore's `ec2` serialiser names a member by its `locationName` with the
//! first letter upper-cased (else the member name), and flattens every list
//! as `Name.N` (1-based), a structure's members as `Name.N.Member`:
//! `Filter.1.Name=status&Filter.1.Value.1=available`,
//! `TagSpecification.1.Tag.1.Key=a`. Booleans are `true`/`false`.

use std::collections::BTreeMap;

use crate::error::{EbsError, Result};
use crate::model::{Filter, Tag, TagSpecification};

/// The decoded parameters, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    map: BTreeMap<String, String>,
}

/// `%XX` and `+` decoding of one form component; the result must be UTF-8.
fn decode(component: &str) -> Result<String> {
    let bytes = component.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        EbsError::InvalidParameterValue(format!(
                            "The request holds a malformed percent-encoding near byte {i}"
                        ))
                    })?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| {
        EbsError::InvalidParameterValue("The request's parameters are not valid UTF-8".into())
    })
}

/// A positive list index (`N` of `Name.N`), without leading zeros so that
/// `Name.1` and `Name.01` cannot both name the first element.
fn index(s: &str) -> Option<u32> {
    if s.starts_with('0') {
        return None;
    }
    s.parse().ok().filter(|&n| n > 0)
}

impl Params {
    /// Parses `a=b&c=d` (empty components skipped). A parameter given twice
    /// is refused: which one counts would be a guess.
    pub fn parse(form: &str) -> Result<Params> {
        let mut params = Params::default();
        params.extend(form)?;
        Ok(params)
    }

    /// Adds the pairs of another form (a POST body after the URL's query
    /// string); the same rule for duplicates across both.
    pub fn extend(&mut self, form: &str) -> Result<()> {
        for pair in form.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (k, v) = (decode(k)?, decode(v)?);
            if self.map.contains_key(&k) {
                return Err(EbsError::InvalidParameterValue(format!(
                    "The parameter {k} is given more than once"
                )));
            }
            self.map.insert(k, v);
        }
        Ok(())
    }

    /// Builds the parameters from pairs (tests, and callers that decoded them).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Params {
        Params {
            map: pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(String::as_str)
    }

    pub fn string(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_owned)
    }

    /// A required parameter, with EC2's message when it is absent.
    pub fn required(&self, name: &str) -> Result<String> {
        self.string(name).ok_or_else(|| missing(name))
    }

    /// A boolean (`true`/`false`, any case, as EC2 accepts).
    pub fn bool(&self, name: &str) -> Result<Option<bool>> {
        self.get(name)
            .map(|v| {
                if v.eq_ignore_ascii_case("true") {
                    Ok(true)
                } else if v.eq_ignore_ascii_case("false") {
                    Ok(false)
                } else {
                    Err(EbsError::InvalidParameterValue(format!(
                        "Value ({v}) for parameter {name} is invalid. Expected: 'true' or 'false'."
                    )))
                }
            })
            .transpose()
    }

    /// `DryRun`: absent is false.
    pub fn dry_run(&self) -> Result<bool> {
        Ok(self.bool("DryRun")?.unwrap_or(false))
    }

    /// A non-negative integer of at most `max`.
    pub fn uint(&self, name: &str, max: u64) -> Result<Option<u64>> {
        self.get(name)
            .map(|v| {
                v.trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|&n| n <= max)
                    .ok_or_else(|| {
                        EbsError::InvalidParameterValue(format!(
                            "Value ({v}) for parameter {name} is invalid. Expected a non-negative integer of at most {max}."
                        ))
                    })
            })
            .transpose()
    }

    pub fn u32(&self, name: &str) -> Result<Option<u32>> {
        // EC2's integers are 32-bit signed: a u32 up to i32::MAX.
        Ok(self
            .uint(name, i32::MAX as u64)?
            .and_then(|n| u32::try_from(n).ok()))
    }

    /// The distinct indices `N` of parameters `prefix.N` and `prefix.N.…`,
    /// in order.
    pub fn indices(&self, prefix: &str) -> Vec<u32> {
        let dotted = format!("{prefix}.");
        let mut out: Vec<u32> = self
            .map
            .range(dotted.clone()..)
            .take_while(|(k, _)| k.starts_with(&dotted))
            .filter_map(|(k, _)| {
                let rest = &k[dotted.len()..];
                index(rest.split('.').next().unwrap_or(rest))
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// A list of strings `prefix.1`, `prefix.2`, … (by index order).
    pub fn list(&self, prefix: &str) -> Vec<String> {
        self.indices(prefix)
            .into_iter()
            .filter_map(|n| self.string(&format!("{prefix}.{n}")))
            .collect()
    }

    /// `Filter.N.Name` and `Filter.N.Value.M`.
    pub fn filters(&self) -> Result<Vec<Filter>> {
        self.indices("Filter")
            .into_iter()
            .map(|n| {
                let base = format!("Filter.{n}");
                Ok(Filter {
                    name: self.required(&format!("{base}.Name"))?,
                    values: self.list(&format!("{base}.Value")),
                })
            })
            .collect()
    }

    /// Tags `prefix.N.Key` / `prefix.N.Value`: the key is required, an
    /// absent value is `None`.
    pub fn tag_pairs(&self, prefix: &str) -> Result<Vec<(String, Option<String>)>> {
        self.indices(prefix)
            .into_iter()
            .map(|n| {
                let base = format!("{prefix}.{n}");
                Ok((
                    self.required(&format!("{base}.Key"))?,
                    self.string(&format!("{base}.Value")),
                ))
            })
            .collect()
    }

    /// Tags to set: an absent value is the empty string, as EC2 stores it.
    pub fn tags(&self, prefix: &str) -> Result<Vec<Tag>> {
        Ok(self
            .tag_pairs(prefix)?
            .into_iter()
            .map(|(key, value)| Tag {
                key,
                value: value.unwrap_or_default(),
            })
            .collect())
    }

    /// `TagSpecification.N.ResourceType` and `TagSpecification.N.Tag.M.*`.
    pub fn tag_specifications(&self) -> Result<Vec<TagSpecification>> {
        self.indices("TagSpecification")
            .into_iter()
            .map(|n| {
                let base = format!("TagSpecification.{n}");
                Ok(TagSpecification {
                    resource_type: self.required(&format!("{base}.ResourceType"))?,
                    tags: self.tags(&format!("{base}.Tag"))?,
                })
            })
            .collect()
    }
}

/// EC2's answer to a request without a required parameter.
pub fn missing(name: &str) -> EbsError {
    EbsError::MissingParameter(format!("The request must contain the parameter {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent_and_plus_and_refuses_bad_encodings() {
        let p = Params::parse("A=x%20y+z&B=%C3%A9%26%3D&&C").unwrap();
        assert_eq!(p.get("A"), Some("x y z"));
        assert_eq!(p.get("B"), Some("é&="));
        assert_eq!(p.get("C"), Some(""));
        for bad in ["A=%", "A=%4", "A=%zz", "A=%FF"] {
            let e = Params::parse(bad).unwrap_err();
            assert_eq!(e.code(), "InvalidParameterValue", "{bad}");
        }
        let e = Params::parse("A=1&A=2").unwrap_err();
        assert_eq!(e.to_string(), "The parameter A is given more than once");
        let mut p = Params::parse("A=1").unwrap();
        assert!(p.extend("A=1").is_err());
    }

    #[test]
    fn lists_follow_their_indices_not_the_text_order() {
        let p = Params::parse("VolumeId.10=c&VolumeId.2=b&VolumeId.1=a&VolumeIdX=z&VolumeId.01=no&VolumeId.0=no&VolumeId.x=no").unwrap();
        assert_eq!(p.list("VolumeId"), ["a", "b", "c"]);
        assert!(p.list("SnapshotId").is_empty());
    }

    #[test]
    fn booleans_and_integers_are_checked() {
        let p = Params::parse("T=TRUE&F=false&X=yes&N=12&Neg=-1&Big=99999999999").unwrap();
        assert_eq!(p.bool("T").unwrap(), Some(true));
        assert_eq!(p.bool("F").unwrap(), Some(false));
        assert_eq!(p.bool("Absent").unwrap(), None);
        let e = p.bool("X").unwrap_err();
        assert_eq!(e.code(), "InvalidParameterValue");
        assert!(e.to_string().contains("Value (yes) for parameter X"), "{e}");
        assert_eq!(p.u32("N").unwrap(), Some(12));
        assert_eq!(p.u32("Neg").unwrap_err().code(), "InvalidParameterValue");
        assert_eq!(p.u32("Big").unwrap_err().code(), "InvalidParameterValue");
        assert!(!p.dry_run().unwrap());
    }

    #[test]
    fn filters_tags_and_tag_specifications() {
        let p = Params::parse(concat!(
            "Filter.1.Name=status&Filter.1.Value.1=available&Filter.1.Value.2=in-use",
            "&Filter.2.Name=tag%3AName&Filter.2.Value.1=w*",
            "&TagSpecification.1.ResourceType=volume",
            "&TagSpecification.1.Tag.1.Key=a&TagSpecification.1.Tag.1.Value=1",
            "&TagSpecification.1.Tag.2.Key=b",
            "&Tag.1.Key=k&Tag.2.Key=l&Tag.2.Value="
        ))
        .unwrap();
        assert_eq!(
            p.filters().unwrap(),
            [
                Filter {
                    name: "status".into(),
                    values: vec!["available".into(), "in-use".into()]
                },
                Filter {
                    name: "tag:Name".into(),
                    values: vec!["w*".into()]
                },
            ]
        );
        let specs = p.tag_specifications().unwrap();
        assert_eq!(specs.len(), 1);
        assert_eq!(specs[0].resource_type, "volume");
        assert_eq!(
            specs[0].tags,
            [
                Tag {
                    key: "a".into(),
                    value: "1".into()
                },
                Tag {
                    key: "b".into(),
                    value: String::new()
                }
            ]
        );
        assert_eq!(
            p.tag_pairs("Tag").unwrap(),
            [("k".into(), None), ("l".into(), Some(String::new()))]
        );
        let e = Params::parse("Filter.1.Value.1=x")
            .unwrap()
            .filters()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "The request must contain the parameter Filter.1.Name"
        );
        let e = Params::parse("TagSpecification.1.Tag.1.Key=a")
            .unwrap()
            .tag_specifications()
            .unwrap_err();
        assert_eq!(e.code(), "MissingParameter");
    }
}
