"""DeepSeek-V3.2 architecture in plain PyTorch (training form): MLA with YaRN RoPE, the DSA lightning indexer
(sparse attention by masking to the indexer's top-k), sigmoid MoE with group-limited routing and a shared
expert, dense first layers, one MTP layer. Parameter names follow the HF checkpoint (see export.py).
Works on torch 1.13 and 2.x.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight.float()
        return y.to(x.dtype)


def yarn_inv_freq(cfg):
    d = cfg["qk_rope_head_dim"]
    base = cfg["rope_theta"]
    rs = cfg.get("rope_scaling") or {}
    inv = 1.0 / (base ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    if rs.get("type", rs.get("rope_type")) == "yarn":
        factor, orig = rs["factor"], rs["original_max_position_embeddings"]

        def corr_dim(n_rot):
            return d * math.log(orig / (n_rot * 2 * math.pi)) / (2 * math.log(base))

        low = max(math.floor(corr_dim(rs["beta_fast"])), 0)
        high = min(math.ceil(corr_dim(rs["beta_slow"])), d - 1)
        if low == high:
            high += 0.001
        ramp = ((torch.arange(d // 2, dtype=torch.float64) - low) / (high - low)).clamp(0, 1)
        smooth = 1 - ramp
        inv = inv / factor * (1 - smooth) + inv * smooth
    return inv.float()


def softmax_scale(cfg):
    scale = (cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"]) ** -0.5
    rs = cfg.get("rope_scaling") or {}
    if rs.get("type", rs.get("rope_type")) == "yarn" and rs["factor"] > 1:
        m = 0.1 * rs.get("mscale_all_dim", 1.0) * math.log(rs["factor"]) + 1.0
        scale = scale * m * m
    return scale


def rope_interleaved(x, cos, sin):
    """x [..., S, heads, d] with pairs (2i, 2i+1); cos/sin [S, d/2]."""
    xf = x.float()
    a, b = xf[..., 0::2], xf[..., 1::2]
    c, s = cos[:, None, :], sin[:, None, :]
    y = torch.stack([a * c - b * s, a * s + b * c], dim=-1).flatten(-2)
    return y.to(x.dtype)


def rope_half(x, cos, sin):
    """NeoX layout: pairs (i, i + d/2)."""
    xf = x.float()
    h = xf.shape[-1] // 2
    a, b = xf[..., :h], xf[..., h:]
    c, s = cos[:, None, :], sin[:, None, :]
    return torch.cat([a * c - b * s, a * s + b * c], dim=-1).to(x.dtype)


def linear(i, o):
    return nn.Linear(i, o, bias=False)


class Indexer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.n_heads = cfg["index_n_heads"]
        self.head_dim = cfg["index_head_dim"]
        self.rope_dim = cfg["qk_rope_head_dim"]
        self.wq_b = linear(cfg["q_lora_rank"], self.n_heads * self.head_dim)
        self.wk = linear(cfg["hidden_size"], self.head_dim)
        self.k_norm = nn.LayerNorm(self.head_dim, eps=1e-6)
        self.weights_proj = linear(cfg["hidden_size"], self.n_heads)

    def forward(self, x, qr, cos, sin):
        """Returns index scores I [B, S, S] (query, key), unmasked, in float32."""
        B, S, _ = x.shape
        q = self.wq_b(qr).view(B, S, self.n_heads, self.head_dim)
        q = torch.cat([rope_half(q[..., :self.rope_dim], cos, sin), q[..., self.rope_dim:]], dim=-1)
        k = F.layer_norm(self.wk(x).float(), (self.head_dim,), self.k_norm.weight.float(),
                         self.k_norm.bias.float(), 1e-6).to(q.dtype)
        k = k.view(B, S, 1, self.head_dim)
        k = torch.cat([rope_half(k[..., :self.rope_dim], cos, sin), k[..., self.rope_dim:]], dim=-1)[:, :, 0]
        w = F.linear(x.float(), self.weights_proj.weight.float()) * (self.n_heads ** -0.5) * (self.head_dim ** -0.5)
        scores = None
        for j in range(self.n_heads):
            sj = torch.relu(torch.matmul(q[:, :, j], k.transpose(1, 2)).float()) * w[:, :, j, None]
            scores = sj if scores is None else scores + sj
        return scores


# Set by enable_sdpa() after a numerical self-test; torch 1.13 has no scaled_dot_product_attention.
SDPA = {"enabled": False}


def enable_sdpa(model, device, tol=2e-2):
    """Turn on the fused path for dense attention if it matches the explicit path on a random input, forward
    and backward, under the same bf16 autocast as training (CUDA only)."""
    if not hasattr(F, "scaled_dot_product_attention") or device != "cuda":
        return "unavailable"
    try:
        x = torch.randint(0, model.cfg["vocab_size"], (2, 160), device=device)
        outs = []
        for flag in (False, True):
            SDPA["enabled"] = flag
            model.zero_grad(set_to_none=True)
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
                logits = model(x, mode="dense", with_mtp=True)["logits"]
            logits.float().pow(2).mean().backward()
            g = model.layers[0].self_attn.q_b_proj.weight.grad.detach().clone()
            outs.append((logits.detach().float(), g))
        model.zero_grad(set_to_none=True)
        (ref, gref), (got, ggot) = outs
        err = max(((got - ref).norm() / ref.norm()).item(), ((ggot - gref).norm() / gref.norm()).item())
        SDPA["enabled"] = err < tol
        return "on (rel err %.1e)" % err if SDPA["enabled"] else "off (rel err %.1e)" % err
    except Exception as e:  # keep the explicit path
        SDPA["enabled"] = False
        model.zero_grad(set_to_none=True)
        return "off (%r)" % (e,)


class MLA(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        D, H = cfg["hidden_size"], cfg["num_attention_heads"]
        self.H = H
        self.dn, self.dr, self.dv = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
        self.r_kv = cfg["kv_lora_rank"]
        self.q_a_proj = linear(D, cfg["q_lora_rank"])
        self.q_a_layernorm = RMSNorm(cfg["q_lora_rank"], cfg["rms_norm_eps"])
        self.q_b_proj = linear(cfg["q_lora_rank"], H * (self.dn + self.dr))
        self.kv_a_proj_with_mqa = linear(D, self.r_kv + self.dr)
        self.kv_a_layernorm = RMSNorm(self.r_kv, cfg["rms_norm_eps"])
        self.kv_b_proj = linear(self.r_kv, H * (self.dn + self.dv))
        self.o_proj = linear(H * self.dv, D)
        self.indexer = Indexer(cfg)
        self.scale = softmax_scale(cfg)
        self.topk = cfg["index_topk"]

    def forward(self, x, cos, sin, causal, mode):
        """mode: 'dense' | 'warmup' (dense attention, indexer KL) | 'sparse' (top-k masked attention, indexer KL)
        | 'sparse_eval'. Returns (out, indexer KL per query [B,S] or None)."""
        B, S, _ = x.shape
        qr = self.q_a_layernorm(self.q_a_proj(x))
        q = self.q_b_proj(qr).view(B, S, self.H, self.dn + self.dr)
        q_nope, q_pe = q[..., :self.dn], rope_interleaved(q[..., self.dn:], cos, sin)
        kv = self.kv_a_proj_with_mqa(x)
        c_kv = self.kv_a_layernorm(kv[..., :self.r_kv])
        k_pe = rope_interleaved(kv[..., self.r_kv:].unsqueeze(2), cos, sin)[:, :, 0]
        kvb = self.kv_b_proj(c_kv).view(B, S, self.H, self.dn + self.dv)
        k_nope, v = kvb[..., :self.dn], kvb[..., self.dn:]
        self.logit_bound = None
        if self.training:
            # Cauchy-Schwarz bound on each query's largest attention logit, scale * |q_t| * max_s |k_s|; the
            # training loop may penalize it (attention-logit growth saturates every head otherwise)
            qn = torch.cat([q_nope, q_pe], dim=-1).float().norm(dim=-1)  # [B, S, H]
            kn = torch.cat([k_nope.float(), k_pe.float().unsqueeze(2).expand(B, S, self.H, self.dr)], -1).norm(dim=-1)
            self.logit_bound = self.scale * qn * kn.amax(dim=1, keepdim=True)
        if mode == "dense" and SDPA["enabled"]:
            # fused causal attention (torch 2.x); same math as the explicit path below
            qf = torch.cat([q_nope, q_pe], dim=-1).transpose(1, 2)
            kf = torch.cat([k_nope, k_pe.unsqueeze(2).expand(B, S, self.H, self.dr)], dim=-1).transpose(1, 2)
            o = F.scaled_dot_product_attention(qf, kf, v.transpose(1, 2), is_causal=True, scale=self.scale)
            return self.o_proj(o.transpose(1, 2).reshape(B, S, self.H * self.dv)), None
        scores = torch.matmul(q_nope.transpose(1, 2), k_nope.permute(0, 2, 3, 1))
        scores = scores + torch.matmul(q_pe.transpose(1, 2), k_pe.transpose(1, 2).unsqueeze(1))
        scores = scores.float() * self.scale
        allowed = causal  # [S, S] bool
        idx_scores = None
        if mode != "dense":
            idx_scores = self.indexer(x.detach(), qr.detach(), cos, sin)
            if mode in ("sparse", "sparse_eval") and S > self.topk:
                masked = idx_scores.detach().masked_fill(~causal, float("-inf"))
                top = masked.topk(self.topk, dim=-1).indices
                sel = torch.zeros(B, S, S, dtype=torch.bool, device=x.device).scatter_(-1, top, True)
                allowed = sel & causal
            else:
                allowed = causal.unsqueeze(0).expand(B, S, S)
            allowed = allowed.unsqueeze(1) if allowed.dim() == 3 else allowed
        scores = scores.masked_fill(~allowed, float("-inf"))
        probs = torch.softmax(scores, dim=-1)
        o = torch.matmul(probs.to(v.dtype), v.transpose(1, 2))  # [B, H, S, dv]
        out = self.o_proj(o.transpose(1, 2).reshape(B, S, self.H * self.dv))
        kl = None
        if mode in ("warmup", "sparse"):
            with torch.no_grad():
                target = probs.detach().sum(1)
                target = target / target.sum(-1, keepdim=True).clamp_min(1e-9)
            allow3 = allowed[:, 0] if allowed.dim() == 4 else allowed
            logq = torch.log_softmax(idx_scores.masked_fill(~allow3, float("-inf")), dim=-1)
            term = target * (torch.log(target.clamp_min(1e-12)) - logq)
            kl = torch.where(allow3 & (target > 0), term, torch.zeros_like(term)).sum(-1)
        return out, kl


class MLP(nn.Module):
    def __init__(self, D, F_):
        super().__init__()
        self.gate_proj = linear(D, F_)
        self.up_proj = linear(D, F_)
        self.down_proj = linear(F_, D)

    def forward(self, x):
        h = F.silu(self.gate_proj(x).float()) * self.up_proj(x).float()
        return self.down_proj(h.to(x.dtype))


class Gate(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        E, D = cfg["n_routed_experts"], cfg["hidden_size"]
        self.weight = nn.Parameter(torch.empty(E, D))
        nn.init.normal_(self.weight, std=cfg["initializer_range"])
        self.register_buffer("e_score_correction_bias", torch.zeros(E))
        self.k, self.G, self.kg = cfg["num_experts_per_tok"], cfg["n_group"], cfg["topk_group"]
        self.route_scale = cfg["routed_scaling_factor"]

    def forward(self, x):
        """x [N, D] -> (weights [N, k] f32, indices [N, k])."""
        s = torch.sigmoid(F.linear(x.float(), self.weight.float()))
        sc = s + self.e_score_correction_bias
        N, E = sc.shape
        if self.G > 1:
            g = sc.view(N, self.G, E // self.G).topk(2, dim=-1).values.sum(-1)
            keep = torch.zeros_like(g, dtype=torch.bool).scatter_(1, g.topk(self.kg, dim=-1).indices, True)
            sc = sc.masked_fill(~keep.repeat_interleave(E // self.G, dim=1), float("-inf"))
        idx = sc.topk(self.k, dim=-1).indices
        w = s.gather(1, idx)
        w = w / (w.sum(-1, keepdim=True) + 1e-20) * self.route_scale
        return w, idx


class MoE(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        D, Fe = cfg["hidden_size"], cfg["moe_intermediate_size"]
        self.gate = Gate(cfg)
        self.experts = nn.ModuleList([MLP(D, Fe) for _ in range(cfg["n_routed_experts"])])
        self.shared_experts = MLP(D, Fe * cfg["n_shared_experts"])
        self.last_load = None

    def forward(self, x):
        """All experts run on all tokens as batched matmuls, combined with the routing weights (zero for
        experts not chosen): the same output and gradients as sparse dispatch, with no host syncs."""
        shape = x.shape
        xf = x.reshape(-1, shape[-1])
        w, idx = self.gate(xf)
        combine = torch.zeros(xf.shape[0], len(self.experts), dtype=torch.float32, device=x.device)
        combine.scatter_(1, idx, w)
        self.last_load = (combine > 0).sum(0).detach()  # tokens per expert (no host sync, unlike bincount)
        wg = torch.stack([e.gate_proj.weight for e in self.experts])  # [E, F, D]
        wu = torch.stack([e.up_proj.weight for e in self.experts])
        wd = torch.stack([e.down_proj.weight for e in self.experts])  # [E, D, F]
        g = torch.matmul(xf.unsqueeze(0), wg.transpose(1, 2).to(xf.dtype))  # [E, N, F]
        u = torch.matmul(xf.unsqueeze(0), wu.transpose(1, 2).to(xf.dtype))
        h = (F.silu(g.float()) * u.float() * combine.t().unsqueeze(-1)).to(xf.dtype)
        y = torch.matmul(h, wd.transpose(1, 2).to(xf.dtype)).float().sum(0)
        y = y + self.shared_experts(xf).float()
        return y.to(x.dtype).view(shape)


class Block(nn.Module):
    def __init__(self, cfg, layer_id):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        self.self_attn = MLA(cfg)
        self.post_attention_layernorm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        dense = layer_id < cfg["first_k_dense_replace"]
        self.mlp = MLP(cfg["hidden_size"], cfg["intermediate_size"]) if dense else MoE(cfg)

    def forward(self, h, cos, sin, causal, mode):
        a, kl = self.self_attn(self.input_layernorm(h), cos, sin, causal, mode)
        h = h + a
        h = h + self.mlp(self.post_attention_layernorm(h))
        return h, kl


class MTPLayer(Block):
    def __init__(self, cfg, layer_id):
        super().__init__(cfg, layer_id)
        D = cfg["hidden_size"]
        self.enorm = RMSNorm(D, cfg["rms_norm_eps"])
        self.hnorm = RMSNorm(D, cfg["rms_norm_eps"])
        self.eh_proj = linear(2 * D, D)
        self.shared_head_norm = RMSNorm(D, cfg["rms_norm_eps"])


class DSV32(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        V, D, L = cfg["vocab_size"], cfg["hidden_size"], cfg["num_hidden_layers"]
        self.embed_tokens = nn.Embedding(V, D)
        self.layers = nn.ModuleList([Block(cfg, i) for i in range(L)])
        self.norm = RMSNorm(D, cfg["rms_norm_eps"])
        self.lm_head = linear(D, V)
        self.mtp = MTPLayer(cfg, L) if cfg["num_nextn_predict_layers"] else None
        self.register_buffer("inv_freq", yarn_inv_freq(cfg), persistent=False)
        self.reset_parameters()

    def reset_parameters(self):
        std = self.cfg["initializer_range"]
        for name, p in self.named_parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=std)
        n_res = 2 * (len(self.layers) + 1)
        for name, p in self.named_parameters():
            if name.endswith("o_proj.weight") or name.endswith("down_proj.weight"):
                p.data.mul_(1.0 / math.sqrt(n_res))

    def rope(self, S, device):
        t = torch.arange(S, device=device, dtype=torch.float32)
        ang = torch.outer(t, self.inv_freq.to(device))
        return ang.cos(), ang.sin()

    def main_params(self):
        return [p for n, p in self.named_parameters() if ".indexer." not in n]

    def indexer_params(self):
        return [p for n, p in self.named_parameters() if ".indexer." in n]

    def forward(self, tokens, mode="dense", with_mtp=True):
        """tokens [B, S]. Returns dict: logits [B,S,V] f32, mtp_logits [B,S-1,V] (predicting t+2 at row t),
        kl: list of per-layer [B,S] indexer KL (or empty), hidden (post final norm)."""
        B, S = tokens.shape
        cos, sin = self.rope(S, tokens.device)
        causal = torch.ones(S, S, dtype=torch.bool, device=tokens.device).tril()
        h = self.embed_tokens(tokens)
        kls = []
        for layer in self.layers:
            h, kl = layer(h, cos, sin, causal, mode)
            if kl is not None:
                kls.append(kl)
        hn = self.norm(h)
        out = {"logits": F.linear(hn.float(), self.lm_head.weight.float()), "kl": kls, "hidden": hn}
        if with_mtp and self.mtp is not None and S > 1:
            m = self.mtp
            e = self.embed_tokens(tokens[:, 1:])
            x = m.eh_proj(torch.cat([m.enorm(e), m.hnorm(hn[:, :-1])], dim=-1))
            x, kl = m(x, cos[:S - 1], sin[:S - 1], causal[:S - 1, :S - 1], mode)
            if kl is not None:
                kls.append(kl)
            out["mtp_logits"] = F.linear(m.shared_head_norm(x).float(), self.lm_head.weight.float())
        return out
