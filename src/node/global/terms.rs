//! Term helpers global's protocol needs: Erlang's ordering of pids (lock ids are *sorted*
//! locker pids, and both sides must compute the same list), integers of any size (tags and
//! lost-connection op ids are bignums on BEAM), and message builders.
use std::cmp::Ordering;

use crate::dist::etf::{Atom, Pid, Term};

/// Erlang term order of two pids, as OTP 25 compares them (checked with `lists:sort/1` on
/// pids built by `binary_to_term`): serial, then number, then node name, then creation.
pub fn pid_cmp(a: &Pid, b: &Pid) -> Ordering {
    a.serial
        .cmp(&b.serial)
        .then(a.id.cmp(&b.id))
        .then(a.node.cmp(&b.node))
        .then(a.creation.cmp(&b.creation))
}

/// `lists:sort([A, B])` of two pids, as a list term.
pub fn sorted_pids(a: Pid, b: Pid) -> Term {
    let (x, y) = if pid_cmp(&a, &b) == Ordering::Greater {
        (b, a)
    } else {
        (a, b)
    };
    Term::list(vec![Term::Pid(x), Term::Pid(y)])
}

/// An integer term (small or big up to 128 bits) as `i128`.
pub fn int_of(t: &Term) -> Option<i128> {
    match t {
        Term::Int(i) => Some(i128::from(*i)),
        Term::Big(b) if b.magnitude.len() <= 15 => {
            let mag = b
                .magnitude
                .iter()
                .rev()
                .fold(0i128, |acc, &x| (acc << 8) | i128::from(x));
            Some(if b.negative { -mag } else { mag })
        }
        _ => None,
    }
}

/// `{'$gen_cast', Body}`.
pub fn cast(body: Term) -> Term {
    Term::tuple(vec![Term::atom("$gen_cast"), body])
}

/// A tuple whose first element is the atom `tag`.
pub fn tagged(tag: &str, rest: Vec<Term>) -> Term {
    let mut v = Vec::with_capacity(rest.len() + 1);
    v.push(Term::atom(tag));
    v.extend(rest);
    Term::Tuple(v)
}

/// The atoms of a list term; `None` if it is not a list of atoms.
pub fn atoms_of(t: &Term) -> Option<Vec<Atom>> {
    match t {
        Term::Nil => Some(Vec::new()),
        _ => t.as_list()?.iter().map(Term::as_atom).collect(),
    }
}

/// The elements of a proper list term (`[]` included).
pub fn list_of(t: &Term) -> Option<&[Term]> {
    match t {
        Term::Nil => Some(&[]),
        _ => t.as_list(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(node: &str, id: u32, serial: u32, creation: u32) -> Pid {
        Pid {
            node: Atom::new(node),
            id,
            serial,
            creation,
        }
    }

    #[test]
    fn pids_sort_as_otp_25_sorts_them() {
        // lists:sort/1 on OTP 25 gave: a/1/0, b/1/0, a/5/0, b/9/0, pidordtest/9/0, a/1/1.
        let mut v = [
            pid("a@h", 5, 0, 1),
            pid("a@h", 1, 1, 1),
            pid("b@h", 1, 0, 1),
            pid("b@h", 9, 0, 0),
            pid("a@h", 1, 0, 7),
            pid("pidordtest@vm", 9, 0, 3),
        ];
        v.sort_by(pid_cmp);
        let got: Vec<(&str, u32, u32)> = v
            .iter()
            .map(|p| (p.node.as_str(), p.id, p.serial))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a@h", 1, 0),
                ("b@h", 1, 0),
                ("a@h", 5, 0),
                ("b@h", 9, 0),
                ("pidordtest@vm", 9, 0),
                ("a@h", 1, 1)
            ]
        );
        assert_eq!(
            pid_cmp(&pid("a@h", 5, 0, 1), &pid("a@h", 5, 0, 2)),
            Ordering::Less
        );
        assert_eq!(
            pid_cmp(&pid("zz@h", 1, 0, 1), &pid("b@h", 2, 0, 1)),
            Ordering::Less
        );
    }

    #[test]
    fn big_tags_are_integers() {
        // -576460752303423488 = -(2^59), SMALL_BIG_EXT on the wire.
        let t = Term::int(-576_460_752_303_423_488);
        assert_eq!(int_of(&t), Some(-576_460_752_303_423_488));
        let big = Term::int(1 << 70);
        assert_eq!(int_of(&big), Some(1 << 70));
        assert_eq!(int_of(&Term::atom("x")), None);
    }
}
