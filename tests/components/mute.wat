;; A detector whose `evaluate` answers every batch with no verdicts,
;; breaking the interface's contract. `rules` and `load-rules` answer with empty lists.
(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (global.set $heap (i32.add (local.get $p) (local.get 3)))
    (block $ok
      (br_if $ok (i32.le_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536))))
      (br_if $ok
        (i32.ne
          (memory.grow (i32.add (i32.shr_u (global.get $heap) (i32.const 16)) (i32.const 1)))
          (i32.const -1)))
      unreachable)
    (local.get $p))
  ;; Offset 16: an empty list. Offset 32: `ok` holding an empty list.
  (func (export "tripline:detector/detector@0.2.0#rules") (result i32) (i32.const 16))
  (func (export "tripline:detector/detector@0.2.0#load-rules") (param i32 i32 i32 i32) (result i32)
    (i32.const 32))
  (func (export "tripline:detector/detector@0.2.0#evaluate") (param i32 i32 i64) (result i32)
    (i32.const 16)))
