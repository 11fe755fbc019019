import type { LayerLayout, LayerRole } from "../arch/types.js";
import type { SynthTensorSpec } from "./weights.js";

/**
 * The synthetic layer's logical weights (one spec per role, named as if stored alone) → the tensors
 * the architecture stores (arch/ layout): a weight stored alone keeps its spec under the stored name;
 * weights fused into one tensor (Phi-3's attn_qkv, gate|up ffn_up) become one spec whose rows are
 * theirs in order.
 */
export function packLayer(layout: LayerLayout, roles: Partial<Record<LayerRole, SynthTensorSpec>>): SynthTensorSpec[] {
  const parts = new Map<string, { offset: number; spec: SynthTensorSpec }[]>();
  for (const [role, ref] of Object.entries(layout.weights) as [LayerRole, NonNullable<LayerLayout["weights"][LayerRole]>][]) {
    const spec = roles[role];
    if (!spec) throw new Error(`synthetic weights have no ${role} for ${ref.tensor}`);
    const list = parts.get(ref.tensor) ?? [];
    list.push({ offset: ref.rowOffset, spec });
    parts.set(ref.tensor, list);
  }
  return layout.tensors.map((t) => {
    const list = parts.get(t.name);
    if (!list) throw new Error(`no synthetic weight for ${t.name}`);
    if (list.length === 1) return { ...list[0]!.spec, name: t.name, shape: t.shape };
    return fused(t.name, t.shape, list.sort((a, b) => a.offset - b.offset));
  });
}

function fused(name: string, shape: number[], list: { offset: number; spec: SynthTensorSpec }[]): SynthTensorSpec {
  const cols = shape.at(-1)!;
  return {
    name,
    shape,
    rows(r0, r1) {
      const out = new Float32Array((r1 - r0) * cols);
      for (const { offset, spec } of list) {
        const a = Math.max(r0, offset);
        const b = Math.min(r1, offset + spec.shape[0]!);
        if (a < b) out.set(spec.rows(a - offset, b - offset), (a - r0) * cols);
      }
      return out;
    },
  };
}
