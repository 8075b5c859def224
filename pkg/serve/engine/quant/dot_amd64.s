#include "textflag.h"

// Macros of the four-token Q8_0/Q4_0 kernels (defined before any TEXT so
// that vet's frame checks see them only where they are used).

// HSUMD adds the four int32 lanes of x into its lane 0 (exact, so the
// order does not matter); tmp is clobbered.
#define HSUMD(x, tmp) \
	VPSHUFD $0x4E, x, tmp \
	VPADDD tmp, x, x \
	VPSHUFD $0xB1, x, tmp \
	VPADDD tmp, x, x

// Q4KSCALES unpacks the 6-bit scales and mins of the Q4_K block at SI
// (ggml's utmp steps): R11 = the eight scales, R10 = the eight mins, one
// byte each. Clobbers AX, BX, DX, R9.
#define Q4KSCALES \
	MOVL 4(SI), AX \
	MOVL 8(SI), BX \
	MOVL 12(SI), DX \
	MOVL DX, R9 \
	SHRL $4, R9 \
	ANDL $0x0F0F0F0F, R9 \
	MOVL BX, R10 \
	SHRL $6, R10 \
	ANDL $0x03030303, R10 \
	SHLL $4, R10 \
	ORL R10, R9 \
	MOVL BX, R10 \
	ANDL $0x3F3F3F3F, R10 \
	ANDL $0x0F0F0F0F, DX \
	MOVL AX, BX \
	SHRL $6, BX \
	ANDL $0x03030303, BX \
	SHLL $4, BX \
	ORL DX, BX \
	ANDL $0x3F3F3F3F, AX \
	MOVL AX, R11 \
	SHLQ $32, BX \
	ORQ BX, R11 \
	SHLQ $32, R9 \
	ORQ R9, R10

// Q6 four-token macros. Q6BUILD* leave one chunk's unsigned 6-bit values
// in Y3 from ql0 (Y0), ql1 (Y1) and qh (Y2); Q6SCALE broadcasts the chunk's
// two scales into Y10; Q6TOK multiplies for one token into its sumi.
#define Q6BUILD1 \
	VPAND Y8, Y0, Y3 \
	VPAND Y9, Y2, Y4 \
	VPSLLW $4, Y4, Y4 \
	VPOR Y4, Y3, Y3

#define Q6BUILD2 \
	VPAND Y8, Y1, Y3 \
	VPSRLW $2, Y2, Y4 \
	VPAND Y9, Y4, Y4 \
	VPSLLW $4, Y4, Y4 \
	VPOR Y4, Y3, Y3

#define Q6BUILD3 \
	VPSRLW $4, Y0, Y3 \
	VPAND Y8, Y3, Y3 \
	VPSRLW $4, Y2, Y4 \
	VPAND Y9, Y4, Y4 \
	VPSLLW $4, Y4, Y4 \
	VPOR Y4, Y3, Y3

#define Q6BUILD4 \
	VPSRLW $4, Y1, Y3 \
	VPAND Y8, Y3, Y3 \
	VPSRLW $6, Y2, Y4 \
	VPAND Y9, Y4, Y4 \
	VPSLLW $4, Y4, Y4 \
	VPOR Y4, Y3, Y3

#define Q6SCALE(c) \
	VPSHUFB q6shuf<>+32*c(SB), Y12, Y10

#define Q6TOK(areg, q8off, sumi) \
	VMOVDQU q8off(areg), Y5 \
	VPMADDUBSW Y5, Y3, Y6 \
	VPMADDWD Y10, Y6, Y6 \
	VPADDD Y6, sumi, sumi

#define Q6TOKS(q8off) \
	Q6TOK(DI, q8off, Y7) \
	Q6TOK(R12, q8off, Y13) \
	Q6TOK(R13, q8off, Y14) \
	Q6TOK(R14, q8off, Y15)

// Q6SUB subtracts the 6-bit values' offset of 32 from the int32 lanes of
// sumi as ggml_vec_dot_q6_K_q8_K does: lane k loses 32·(bsums[2k]·sc[2k] +
// bsums[2k+1]·sc[2k+1]) for the block at SI and the token at areg. The
// lanes (not only their total) must match ggml's, because each lane is
// converted and fused-multiply-added on its own.
#define Q6SUB(areg, sumi) \
	VMOVDQU 260(areg), Y4 \
	VPMOVSXBW 192(SI), Y5 \
	VPMADDWD Y5, Y4, Y4 \
	VPSLLD $5, Y4, Y4 \
	VPSUBD Y4, sumi, sumi

// Q6HALF: one 128-element half h of the block at SI for the four tokens.
#define Q6HALF(qlo, qho, sco, q8o) \
	VMOVDQU qlo(SI), Y0 \
	VMOVDQU qlo+32(SI), Y1 \
	VMOVDQU qho(SI), Y2 \
	VPMOVSXBW sco(SI), X12 \
	VINSERTI128 $1, X12, Y12, Y12 \
	Q6BUILD1 \
	Q6SCALE(0) \
	Q6TOKS(q8o) \
	Q6BUILD2 \
	Q6SCALE(1) \
	Q6TOKS(q8o+32) \
	Q6BUILD3 \
	Q6SCALE(2) \
	Q6TOKS(q8o+64) \
	Q6BUILD4 \
	Q6SCALE(3) \
	Q6TOKS(q8o+96)

// Q6FIN: scratch acc at off(DX) += (f16(w.d) * a.D) * float(sumi).
#define Q6FIN(areg, sumi, off) \
	Q6SUB(areg, sumi) \
	MOVWLZX 208(SI), AX \
	VMOVSS (R8)(AX*4), X1 \
	VMULSS (areg), X1, X1 \
	VBROADCASTSS X1, Y1 \
	VCVTDQ2PS sumi, sumi \
	VMOVUPS off(DX), Y0 \
	VFMADD231PS sumi, Y1, Y0 \
	VMOVUPS Y0, off(DX)

#define Q6OUT(off, outoff) \
	VMOVUPS off(DX), Y2 \
	VEXTRACTF128 $1, Y2, X1 \
	VADDPS X2, X1, X0 \
	VMOVHLPS X0, X0, X1 \
	VADDPS X1, X0, X0 \
	VMOVSHDUP X0, X1 \
	VADDSS X1, X0, X0 \
	MOVSS X0, outoff(BX)

// Q80TOK: the signed weight block (Y2 signs, Y4 = |w|, X10 = f16(w.d))
// against the Q8_0 block at areg, into acc, as dotQ8_0AVX2 does per block.
#define Q80TOK(areg, acc) \
	MOVWLZX (areg), BX \
	VMULSS (R8)(BX*4), X10, X1 \
	VBROADCASTSS X1, Y1 \
	VMOVDQU 2(areg), Y3 \
	VPSIGNB Y2, Y3, Y5 \
	VPMADDUBSW Y5, Y4, Y6 \
	VPMADDWD Y7, Y6, Y6 \
	VCVTDQ2PS Y6, Y6 \
	VFMADD231PS Y6, Y1, acc

#define QOUT(acc, accx, outoff) \
	VEXTRACTF128 $1, acc, X1 \
	VADDPS accx, X1, X0 \
	VMOVHLPS X0, X0, X1 \
	VADDPS X1, X0, X0 \
	VMOVSHDUP X0, X1 \
	VADDSS X1, X0, X0 \
	MOVSS X0, outoff(BX)

// Q40TOKR: one Q4_0 block against the token at areg in the order of
// llama.cpp's repacked q4_0_8x8 kernels: the block's int32 sum, converted
// and fused-multiply-added with d_w·d_a into the scalar accx.
#define Q40TOKR(areg, accx) \
	MOVWLZX (areg), BX \
	VMULSS (R8)(BX*4), X10, X1 \
	VMOVDQU 2(areg), Y3 \
	VPSIGNB Y2, Y3, Y5 \
	VPMADDUBSW Y5, Y4, Y6 \
	VPMADDWD Y7, Y6, Y6 \
	VEXTRACTI128 $1, Y6, X5 \
	VPADDD X5, X6, X6 \
	HSUMD(X6, X5) \
	VCVTDQ2PS X6, X6 \
	VFMADD231SS X6, X1, accx

#define X4TOKENSR \
	Q40TOKR(DI, X12) \
	Q40TOKR(R12, X13) \
	Q40TOKR(R13, X14) \
	Q40TOKR(R14, X15) \
	ADDQ $34, DI \
	ADDQ $34, R12 \
	ADDQ $34, R13 \
	ADDQ $34, R14

#define X4EPILOGUER \
	MOVQ out+56(FP), BX \
	MOVSS X12, 0(BX) \
	MOVSS X13, 4(BX) \
	MOVSS X14, 8(BX) \
	MOVSS X15, 12(BX) \
	VZEROUPPER \
	RET

#define X4PROLOGUE \
	MOVQ w+0(FP), SI \
	MOVQ a0+8(FP), DI \
	MOVQ a1+16(FP), R12 \
	MOVQ a2+24(FP), R13 \
	MOVQ a3+32(FP), R14 \
	MOVQ nb+40(FP), CX \
	MOVQ tab+48(FP), R8 \
	VXORPS Y12, Y12, Y12 \
	VXORPS Y13, Y13, Y13 \
	VXORPS Y14, Y14, Y14 \
	VXORPS Y15, Y15, Y15 \
	MOVL $0x00010001, AX \
	VMOVD AX, X7 \
	VPBROADCASTD X7, Y7 \
	MOVL $0x0F0F0F0F, AX \
	VMOVD AX, X8 \
	VPBROADCASTD X8, Y8 \
	MOVL $0x08080808, AX \
	VMOVD AX, X9 \
	VPBROADCASTD X9, Y9

#define X4TOKENS \
	Q80TOK(DI, Y12) \
	Q80TOK(R12, Y13) \
	Q80TOK(R13, Y14) \
	Q80TOK(R14, Y15) \
	ADDQ $34, DI \
	ADDQ $34, R12 \
	ADDQ $34, R13 \
	ADDQ $34, R14

#define X4EPILOGUE \
	MOVQ out+56(FP), BX \
	QOUT(Y12, X12, 0) \
	QOUT(Y13, X13, 4) \
	QOUT(Y14, X14, 8) \
	QOUT(Y15, X15, 12) \
	VZEROUPPER \
	RET


// AVX2/FMA kernels. They perform the float operations of the llama.cpp
// kernels they stand for, in the same order, so results agree to the bit:
// Q8_0 as ggml_vec_dot_q8_0_q8_0 (eight int32 lanes of four-product sums
// per block, one FMA per lane and block, then the horizontal sum); Q4_0 as
// the repacked ggml_gemv/gemm_q4_0_8x8_q8_0 (the block's int32 sum, one
// scalar FMA per block); Q4_K and Q6_K as described at their functions.

// func dotQ8_0AVX2(w, a *byte, nb int, rows int, tab *float32, out *float32)
// out[r] for rows consecutive rows of nb blocks starting at w.
TEXT ·dotQ8_0AVX2(SB), NOSPLIT, $0-48
	MOVQ w+0(FP), SI
	MOVQ a+8(FP), R12
	MOVQ nb+16(FP), R13
	MOVQ rows+24(FP), R14
	MOVQ tab+32(FP), R8
	MOVQ out+40(FP), DX
	MOVL $0x00010001, AX
	VMOVD AX, X7
	VPBROADCASTD X7, Y7
q80row:
	MOVQ R12, DI
	MOVQ R13, CX
	VXORPS Y0, Y0, Y0
q80loop:
	TESTQ CX, CX
	JZ q80done
	MOVWLZX (SI), AX
	MOVWLZX (DI), BX
	VMOVSS (R8)(AX*4), X1
	VMULSS (R8)(BX*4), X1, X1
	VBROADCASTSS X1, Y1
	VMOVDQU 2(SI), Y2
	VMOVDQU 2(DI), Y3
	VPSIGNB Y2, Y2, Y4
	VPSIGNB Y2, Y3, Y5
	VPMADDUBSW Y5, Y4, Y6
	VPMADDWD Y7, Y6, Y6
	VCVTDQ2PS Y6, Y6
	VFMADD231PS Y6, Y1, Y0
	ADDQ $34, SI
	ADDQ $34, DI
	DECQ CX
	JMP q80loop
q80done:
	VEXTRACTF128 $1, Y0, X1
	VADDPS X0, X1, X0
	VMOVHLPS X0, X0, X1
	VADDPS X1, X0, X0
	VMOVSHDUP X0, X1
	VADDSS X1, X0, X0
	MOVSS X0, (DX)
	ADDQ $4, DX
	DECQ R14
	JNZ q80row
	VZEROUPPER
	RET

// func dotQ4_0AVX2(w, a *byte, nb int, tab *float32) float32
TEXT ·dotQ4_0AVX2(SB), NOSPLIT, $0-36
	MOVQ w+0(FP), SI
	MOVQ a+8(FP), DI
	MOVQ nb+16(FP), CX
	MOVQ tab+24(FP), R8
	VXORPS Y0, Y0, Y0
	MOVL $0x00010001, AX
	VMOVD AX, X7
	VPBROADCASTD X7, Y7
	MOVL $0x0F0F0F0F, AX
	VMOVD AX, X8
	VPBROADCASTD X8, Y8
	MOVL $0x08080808, AX
	VMOVD AX, X9
	VPBROADCASTD X9, Y9
q40loop:
	TESTQ CX, CX
	JZ q40done
	MOVWLZX (SI), AX
	MOVWLZX (DI), BX
	VMOVSS (R8)(AX*4), X1
	VMULSS (R8)(BX*4), X1, X1
	VBROADCASTSS X1, Y1
	VMOVDQU 2(SI), X2
	VPSRLW $4, X2, X3
	VINSERTI128 $1, X3, Y2, Y2
	VPAND Y8, Y2, Y2
	VPSUBB Y9, Y2, Y2
	VMOVDQU 2(DI), Y3
	VPSIGNB Y2, Y2, Y4
	VPSIGNB Y2, Y3, Y5
	VPMADDUBSW Y5, Y4, Y6
	VPMADDWD Y7, Y6, Y6
	VEXTRACTI128 $1, Y6, X5
	VPADDD X5, X6, X6
	HSUMD(X6, X5)
	VCVTDQ2PS X6, X6
	VFMADD231SS X6, X1, X0
	ADDQ $18, SI
	ADDQ $34, DI
	DECQ CX
	JMP q40loop
q40done:
	VZEROUPPER
	MOVSS X0, ret+32(FP)
	RET

// q6shuf<>: per 32-value chunk c of a half, VPSHUFB masks that broadcast
// scale word 2c to the low lane and word 2c+1 to the high lane of the
// half's eight sign-extended scales (held in both lanes).
DATA q6shuf<>+0(SB)/8, $0x0100010001000100
DATA q6shuf<>+8(SB)/8, $0x0100010001000100
DATA q6shuf<>+16(SB)/8, $0x0302030203020302
DATA q6shuf<>+24(SB)/8, $0x0302030203020302
DATA q6shuf<>+32(SB)/8, $0x0504050405040504
DATA q6shuf<>+40(SB)/8, $0x0504050405040504
DATA q6shuf<>+48(SB)/8, $0x0706070607060706
DATA q6shuf<>+56(SB)/8, $0x0706070607060706
DATA q6shuf<>+64(SB)/8, $0x0908090809080908
DATA q6shuf<>+72(SB)/8, $0x0908090809080908
DATA q6shuf<>+80(SB)/8, $0x0b0a0b0a0b0a0b0a
DATA q6shuf<>+88(SB)/8, $0x0b0a0b0a0b0a0b0a
DATA q6shuf<>+96(SB)/8, $0x0d0c0d0c0d0c0d0c
DATA q6shuf<>+104(SB)/8, $0x0d0c0d0c0d0c0d0c
DATA q6shuf<>+112(SB)/8, $0x0f0e0f0e0f0e0f0e
DATA q6shuf<>+120(SB)/8, $0x0f0e0f0e0f0e0f0e
GLOBL q6shuf<>(SB), RODATA|NOPTR, $128

// Q6CHUNK: the unsigned 6-bit values in Y3 against the 32 int8 at off(R12),
// times the scales 2c (first 16 elements) and 2c+1 (last 16) of the half's
// sign-extended scales in Y11, added to the int32 lanes of Y13 (the -32
// offset is Q6SUB's).
#define Q6CHUNK(off, c) \
	VMOVDQU off(R12), Y5 \
	VPMADDUBSW Y5, Y3, Y6 \
	VPSHUFB q6shuf<>+32*c(SB), Y11, Y10 \
	VPMADDWD Y10, Y6, Y6 \
	VPADDD Y6, Y13, Y13

// func dotQ6_KAVX2(w *byte, a *Q8K, nb int, rows int, tab *float32, out *float32)
// out[r] for rows consecutive rows of nb blocks starting at w.
TEXT ·dotQ6_KAVX2(SB), NOSPLIT, $0-48
	MOVQ w+0(FP), SI
	MOVQ a+8(FP), R13
	MOVQ nb+16(FP), R15
	MOVQ rows+24(FP), R14
	MOVQ tab+32(FP), R8
	MOVQ out+40(FP), BX
	MOVL $0x0F0F0F0F, AX
	VMOVD AX, X8
	VPBROADCASTD X8, Y8
	MOVL $0x03030303, AX
	VMOVD AX, X9
	VPBROADCASTD X9, Y9
q6row:
	MOVQ R13, DI
	MOVQ R15, CX
	VXORPS Y15, Y15, Y15
q6rowloop:
	TESTQ CX, CX
	JZ q6rowdone
	VPXOR Y13, Y13, Y13
	MOVQ SI, R9            // ql
	LEAQ 128(SI), R10      // qh
	LEAQ 192(SI), R11      // scales
	LEAQ 4(DI), R12        // q8
	MOVQ $2, DX
q6half:
	VMOVDQU (R9), Y0
	VMOVDQU 32(R9), Y1
	VMOVDQU (R10), Y2
	VPMOVSXBW (R11), X11
	VINSERTI128 $1, X11, Y11, Y11
	VPAND Y8, Y0, Y3
	VPAND Y9, Y2, Y4
	VPSLLW $4, Y4, Y4
	VPOR Y4, Y3, Y3
	Q6CHUNK(0, 0)
	VPAND Y8, Y1, Y3
	VPSRLW $2, Y2, Y4
	VPAND Y9, Y4, Y4
	VPSLLW $4, Y4, Y4
	VPOR Y4, Y3, Y3
	Q6CHUNK(32, 1)
	VPSRLW $4, Y0, Y3
	VPAND Y8, Y3, Y3
	VPSRLW $4, Y2, Y4
	VPAND Y9, Y4, Y4
	VPSLLW $4, Y4, Y4
	VPOR Y4, Y3, Y3
	Q6CHUNK(64, 2)
	VPSRLW $4, Y1, Y3
	VPAND Y8, Y3, Y3
	VPSRLW $6, Y2, Y4
	VPAND Y9, Y4, Y4
	VPSLLW $4, Y4, Y4
	VPOR Y4, Y3, Y3
	Q6CHUNK(96, 3)
	ADDQ $64, R9
	ADDQ $32, R10
	ADDQ $8, R11
	ADDQ $128, R12
	DECQ DX
	JNZ q6half
	Q6SUB(DI, Y13)
	// d = a.D * f16(w.d); acc += d * float(sumi lanes)
	MOVWLZX 208(SI), AX
	VMOVSS (R8)(AX*4), X1
	VMULSS (DI), X1, X1
	VBROADCASTSS X1, Y1
	VCVTDQ2PS Y13, Y13
	VFMADD231PS Y13, Y1, Y15
	ADDQ $210, SI
	ADDQ $292, DI
	DECQ CX
	JMP q6rowloop
q6rowdone:
	VEXTRACTF128 $1, Y15, X1
	VADDPS X15, X1, X0
	VMOVHLPS X0, X0, X1
	VADDPS X1, X0, X0
	VMOVSHDUP X0, X1
	VADDSS X1, X0, X0
	MOVSS X0, (BX)
	ADDQ $4, BX
	DECQ R14
	JNZ q6row
	VZEROUPPER
	RET

// Q4CHUNK: 32 bytes of Q4_K nibbles at qoff(R9) against the 64 int8 at
// q8off(R10), the low nibbles weighted by scale byte shl/8 of R11 and the
// high ones by byte shh/8, added to the int32 lanes of Y13.
#define Q4CHUNK(qoff, q8off, shl, shh) \
	VMOVDQU qoff(R9), Y3 \
	VPAND Y8, Y3, Y4 \
	VPSRLW $4, Y3, Y3 \
	VPAND Y8, Y3, Y3 \
	MOVQ R11, AX \
	SHRQ $shl, AX \
	ANDL $0xFF, AX \
	VMOVD AX, X10 \
	VPBROADCASTW X10, Y10 \
	MOVQ R11, AX \
	SHRQ $shh, AX \
	ANDL $0xFF, AX \
	VMOVD AX, X11 \
	VPBROADCASTW X11, Y11 \
	VMOVDQU q8off(R10), Y5 \
	VPMADDUBSW Y5, Y4, Y6 \
	VPMADDWD Y10, Y6, Y6 \
	VPADDD Y6, Y13, Y13 \
	VMOVDQU q8off+32(R10), Y5 \
	VPMADDUBSW Y5, Y3, Y6 \
	VPMADDWD Y11, Y6, Y6 \
	VPADDD Y6, Y13, Y13

// func dotQ4_KAVX2(w *byte, a *Q8K, nb int, rows int, tab *float32, out *float32)
// out[r] for rows consecutive rows of nb blocks starting at w.
TEXT ·dotQ4_KAVX2(SB), NOSPLIT, $0-48
	MOVQ w+0(FP), SI
	MOVQ a+8(FP), R13
	MOVQ nb+16(FP), R15
	MOVQ rows+24(FP), R14
	MOVQ tab+32(FP), R8
	MOVQ out+40(FP), R12
	MOVL $0x0F0F0F0F, AX
	VMOVD AX, X8
	VPBROADCASTD X8, Y8
q4krow:
	MOVQ R13, DI
	MOVQ R15, CX
	VXORPS Y15, Y15, Y15
	VXORPS X14, X14, X14
q4krowloop:
	TESTQ CX, CX
	JZ q4krowdone
	Q4KSCALES
	// mins · (pairwise bsums), into X14 weighted by y.d * dmin
	VMOVQ R10, X5
	VPMOVZXBW X5, X5
	VMOVDQU 260(DI), Y6
	VEXTRACTI128 $1, Y6, X7
	VPHADDW X7, X6, X6
	VPMADDWD X6, X5, X5
	HSUMD(X5, X6)
	VCVTDQ2PS X5, X5
	MOVWLZX 2(SI), AX
	VMOVSS (R8)(AX*4), X1
	VMULSS (DI), X1, X1
	VFMADD231SS X5, X1, X14
	// scales · nibble products
	VPXOR Y13, Y13, Y13
	LEAQ 16(SI), R9
	LEAQ 4(DI), R10
	Q4CHUNK(0, 0, 0, 8)
	Q4CHUNK(32, 64, 16, 24)
	Q4CHUNK(64, 128, 32, 40)
	Q4CHUNK(96, 192, 48, 56)
	MOVWLZX (SI), AX
	VMOVSS (R8)(AX*4), X2
	VMULSS (DI), X2, X2
	VEXTRACTI128 $1, Y13, X6
	VPADDD X6, X13, X13
	HSUMD(X13, X6)
	VCVTDQ2PS X13, X13
	VFMADD231SS X13, X2, X15
	ADDQ $144, SI
	ADDQ $292, DI
	DECQ CX
	JMP q4krowloop
q4krowdone:
	VSUBSS X14, X15, X0
	MOVSS X0, (R12)
	ADDQ $4, R12
	DECQ R14
	JNZ q4krow
	VZEROUPPER
	RET

// Four-token versions: one weight row against four activation rows, with
// the weight-side work (nibble and scale unpacking) done once. Per token
// they perform exactly the operations of the one-token kernels in the same
// order, so a token's result does not depend on how it was batched.

// Q4TOK: the nibbles in Y4 (low) and Y3 (high), weighted by Y10/Y11, against
// the token at areg, chunk q8off, into the int32 lanes of sumi.
#define Q4TOK(areg, q8off, sumi) \
	VMOVDQU q8off+4(areg), Y5 \
	VPMADDUBSW Y5, Y4, Y6 \
	VPMADDWD Y10, Y6, Y6 \
	VPADDD Y6, sumi, sumi \
	VMOVDQU q8off+36(areg), Y5 \
	VPMADDUBSW Y5, Y3, Y6 \
	VPMADDWD Y11, Y6, Y6 \
	VPADDD Y6, sumi, sumi

// Q4NIB: unpack nibble chunk qoff of the row and broadcast its two scales.
#define Q4NIB(qoff, shl, shh) \
	VMOVDQU qoff(R9), Y3 \
	VPAND Y8, Y3, Y4 \
	VPSRLW $4, Y3, Y3 \
	VPAND Y8, Y3, Y3 \
	MOVQ R11, AX \
	SHRQ $shl, AX \
	ANDL $0xFF, AX \
	VMOVD AX, X10 \
	VPBROADCASTW X10, Y10 \
	MOVQ R11, AX \
	SHRQ $shh, AX \
	ANDL $0xFF, AX \
	VMOVD AX, X11 \
	VPBROADCASTW X11, Y11

#define Q4CHUNK4(qoff, q8off, shl, shh) \
	Q4NIB(qoff, shl, shh) \
	Q4TOK(DI, q8off, Y0) \
	Q4TOK(R12, q8off, Y1) \
	Q4TOK(R13, q8off, Y2) \
	Q4TOK(R14, q8off, Y7)

// Q4MINS: the mins term of the token at areg into scratch lanes at off(DX).
#define Q4MINS(areg, off) \
	VMOVDQU 260(areg), Y6 \
	VEXTRACTI128 $1, Y6, X7 \
	VPHADDW X7, X6, X6 \
	VPMADDWD X6, X9, X6 \
	HSUMD(X6, X7) \
	VCVTDQ2PS X6, X6 \
	VMULSS (areg), X1, X7 \
	VMOVSS off(DX), X3 \
	VFMADD231SS X6, X7, X3 \
	VMOVSS X3, off(DX)

// Q4FIN: acc += (d_w * a.D) * float(sumi) for the token at areg (d_w in X9).
#define Q4FIN(areg, sumi, sumix, accx) \
	VMULSS (areg), X9, X6 \
	VEXTRACTI128 $1, sumi, X5 \
	VPADDD X5, sumix, sumix \
	HSUMD(sumix, X5) \
	VCVTDQ2PS sumix, sumix \
	VFMADD231SS sumix, X6, accx

// Q4OUT: reduce acc and the scratch mins lanes at off(DX) into the float at
// outoff(BX), as dotQ4_KAVX2 does.
#define Q4OUT(accx, off, outoff) \
	VMOVSS off(DX), X3 \
	VSUBSS X3, accx, X0 \
	MOVSS X0, outoff(BX)

// func dotQ4_KAVX2x4(w *byte, a0, a1, a2, a3 *Q8K, nb int, tab *float32, scratch *[16]float32, out *[4]float32)
TEXT ·dotQ4_KAVX2x4(SB), NOSPLIT, $0-72
	MOVQ w+0(FP), SI
	MOVQ a0+8(FP), DI
	MOVQ a1+16(FP), R12
	MOVQ a2+24(FP), R13
	MOVQ a3+32(FP), R14
	MOVQ nb+40(FP), CX
	MOVQ tab+48(FP), R8
	VXORPS Y12, Y12, Y12
	VXORPS Y13, Y13, Y13
	VXORPS Y14, Y14, Y14
	VXORPS Y15, Y15, Y15
	MOVQ scratch+56(FP), DX
	VXORPS Y0, Y0, Y0
	VMOVUPS Y0, (DX)
	VMOVUPS Y0, 32(DX)
	MOVL $0x0F0F0F0F, AX
	VMOVD AX, X8
	VPBROADCASTD X8, Y8
q4k4loop:
	TESTQ CX, CX
	JZ q4k4done
	Q4KSCALES
	VMOVQ R10, X9
	VPMOVZXBW X9, X9
	MOVWLZX 2(SI), AX
	VMOVSS (R8)(AX*4), X1
	MOVQ scratch+56(FP), DX
	Q4MINS(DI, 0)
	Q4MINS(R12, 16)
	Q4MINS(R13, 32)
	Q4MINS(R14, 48)
	MOVWLZX (SI), AX
	VMOVSS (R8)(AX*4), X9   // d_w (the mins are done with X9)
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y7, Y7, Y7
	LEAQ 16(SI), R9
	Q4CHUNK4(0, 0, 0, 8)
	Q4CHUNK4(32, 64, 16, 24)
	Q4CHUNK4(64, 128, 32, 40)
	Q4CHUNK4(96, 192, 48, 56)
	Q4FIN(DI, Y0, X0, X12)
	Q4FIN(R12, Y1, X1, X13)
	Q4FIN(R13, Y2, X2, X14)
	Q4FIN(R14, Y7, X7, X15)
	ADDQ $144, SI
	ADDQ $292, DI
	ADDQ $292, R12
	ADDQ $292, R13
	ADDQ $292, R14
	DECQ CX
	JMP q4k4loop
q4k4done:
	MOVQ scratch+56(FP), DX
	MOVQ out+64(FP), BX
	Q4OUT(X12, 0, 0)
	Q4OUT(X13, 16, 4)
	Q4OUT(X14, 32, 8)
	Q4OUT(X15, 48, 12)
	VZEROUPPER
	RET

// dotQ4_KAVX2x4g is dotQ4_KAVX2x4 with ggml_gemm_q4_K_8x8_q8_K's float
// steps (llama.cpp's kernel for prompt rows in groups of four): the integer
// sums are fused-multiply-added once per 64-value sub-block pair rather
// than once per super-block, for the scales and for the mins alike.

// Q4MINSG: the four per-pair mins sums of the token at areg, each
// fused-multiply-added in turn into the float at off(DX).
#define Q4MINSG(areg, off) \
	VMOVDQU 260(areg), Y6 \
	VEXTRACTI128 $1, Y6, X7 \
	VPHADDW X7, X6, X6 \
	VPMADDWD X6, X9, X6 \
	VCVTDQ2PS X6, X6 \
	VMULSS (areg), X1, X7 \
	VMOVSS off(DX), X3 \
	VFMADD231SS X6, X7, X3 \
	VPSRLDQ $4, X6, X6 \
	VFMADD231SS X6, X7, X3 \
	VPSRLDQ $4, X6, X6 \
	VFMADD231SS X6, X7, X3 \
	VPSRLDQ $4, X6, X6 \
	VFMADD231SS X6, X7, X3 \
	VMOVSS X3, off(DX)

// Q4TOKG: one sub-block pair of the token at areg, summed and
// fused-multiply-added into accx.
#define Q4TOKG(areg, q8off, sumi, sumix, accx) \
	VPXOR sumi, sumi, sumi \
	Q4TOK(areg, q8off, sumi) \
	Q4FIN(areg, sumi, sumix, accx)

#define Q4CHUNK4G(qoff, q8off, shl, shh) \
	Q4NIB(qoff, shl, shh) \
	Q4TOKG(DI, q8off, Y0, X0, X12) \
	Q4TOKG(R12, q8off, Y1, X1, X13) \
	Q4TOKG(R13, q8off, Y2, X2, X14) \
	Q4TOKG(R14, q8off, Y7, X7, X15)

// func dotQ4_KAVX2x4g(w *byte, a0, a1, a2, a3 *Q8K, nb int, tab *float32, scratch *[16]float32, out *[4]float32)
TEXT ·dotQ4_KAVX2x4g(SB), NOSPLIT, $0-72
	MOVQ w+0(FP), SI
	MOVQ a0+8(FP), DI
	MOVQ a1+16(FP), R12
	MOVQ a2+24(FP), R13
	MOVQ a3+32(FP), R14
	MOVQ nb+40(FP), CX
	MOVQ tab+48(FP), R8
	VXORPS Y12, Y12, Y12
	VXORPS Y13, Y13, Y13
	VXORPS Y14, Y14, Y14
	VXORPS Y15, Y15, Y15
	MOVQ scratch+56(FP), DX
	VXORPS Y0, Y0, Y0
	VMOVUPS Y0, (DX)
	VMOVUPS Y0, 32(DX)
	MOVL $0x0F0F0F0F, AX
	VMOVD AX, X8
	VPBROADCASTD X8, Y8
q4k4gloop:
	TESTQ CX, CX
	JZ q4k4gdone
	Q4KSCALES
	VMOVQ R10, X9
	VPMOVZXBW X9, X9
	MOVWLZX 2(SI), AX
	VMOVSS (R8)(AX*4), X1
	MOVQ scratch+56(FP), DX
	Q4MINSG(DI, 0)
	Q4MINSG(R12, 16)
	Q4MINSG(R13, 32)
	Q4MINSG(R14, 48)
	MOVWLZX (SI), AX
	VMOVSS (R8)(AX*4), X9   // d_w (the mins are done with X9)
	LEAQ 16(SI), R9
	Q4CHUNK4G(0, 0, 0, 8)
	Q4CHUNK4G(32, 64, 16, 24)
	Q4CHUNK4G(64, 128, 32, 40)
	Q4CHUNK4G(96, 192, 48, 56)
	ADDQ $144, SI
	ADDQ $292, DI
	ADDQ $292, R12
	ADDQ $292, R13
	ADDQ $292, R14
	DECQ CX
	JMP q4k4gloop
q4k4gdone:
	MOVQ scratch+56(FP), DX
	MOVQ out+64(FP), BX
	Q4OUT(X12, 0, 0)
	Q4OUT(X13, 16, 4)
	Q4OUT(X14, 32, 8)
	Q4OUT(X15, 48, 12)
	VZEROUPPER
	RET

// func dotQ8_0AVX2x4(w, a0, a1, a2, a3 *byte, nb int, tab *float32, out *[4]float32)
TEXT ·dotQ8_0AVX2x4(SB), NOSPLIT, $0-64
	X4PROLOGUE
q804loop:
	TESTQ CX, CX
	JZ q804done
	MOVWLZX (SI), AX
	VMOVSS (R8)(AX*4), X10
	VMOVDQU 2(SI), Y2
	VPSIGNB Y2, Y2, Y4
	X4TOKENS
	ADDQ $34, SI
	DECQ CX
	JMP q804loop
q804done:
	X4EPILOGUE

// func dotQ4_0AVX2x4(w, a0, a1, a2, a3 *byte, nb int, tab *float32, out *[4]float32)
TEXT ·dotQ4_0AVX2x4(SB), NOSPLIT, $0-64
	X4PROLOGUE
q404loop:
	TESTQ CX, CX
	JZ q404done
	MOVWLZX (SI), AX
	VMOVSS (R8)(AX*4), X10
	VMOVDQU 2(SI), X2
	VPSRLW $4, X2, X3
	VINSERTI128 $1, X3, Y2, Y2
	VPAND Y8, Y2, Y2
	VPSUBB Y9, Y2, Y2
	VPSIGNB Y2, Y2, Y4
	X4TOKENSR
	ADDQ $18, SI
	DECQ CX
	JMP q404loop
q404done:
	X4EPILOGUER

// func dotQ6_KAVX2x4(w *byte, a0, a1, a2, a3 *Q8K, nb int, tab *float32, scratch *[32]float32, out *[4]float32)
TEXT ·dotQ6_KAVX2x4(SB), NOSPLIT, $0-72
	MOVQ w+0(FP), SI
	MOVQ a0+8(FP), DI
	MOVQ a1+16(FP), R12
	MOVQ a2+24(FP), R13
	MOVQ a3+32(FP), R14
	MOVQ nb+40(FP), CX
	MOVQ tab+48(FP), R8
	MOVQ scratch+56(FP), DX
	VXORPS Y0, Y0, Y0
	VMOVUPS Y0, (DX)
	VMOVUPS Y0, 32(DX)
	VMOVUPS Y0, 64(DX)
	VMOVUPS Y0, 96(DX)
	MOVL $0x0F0F0F0F, AX
	VMOVD AX, X8
	VPBROADCASTD X8, Y8
	MOVL $0x03030303, AX
	VMOVD AX, X9
	VPBROADCASTD X9, Y9
q6k4loop:
	TESTQ CX, CX
	JZ q6k4done
	VPXOR Y7, Y7, Y7
	VPXOR Y13, Y13, Y13
	VPXOR Y14, Y14, Y14
	VPXOR Y15, Y15, Y15
	Q6HALF(0, 128, 192, 4)
	Q6HALF(64, 160, 200, 132)
	Q6FIN(DI, Y7, 0)
	Q6FIN(R12, Y13, 32)
	Q6FIN(R13, Y14, 64)
	Q6FIN(R14, Y15, 96)
	ADDQ $210, SI
	ADDQ $292, DI
	ADDQ $292, R12
	ADDQ $292, R13
	ADDQ $292, R14
	DECQ CX
	JMP q6k4loop
q6k4done:
	MOVQ out+64(FP), BX
	Q6OUT(0, 0)
	Q6OUT(32, 4)
	Q6OUT(64, 8)
	Q6OUT(96, 12)
	VZEROUPPER
	RET

// func scoresF16AVX2(k *uint16, stride int, q *float32, hd int, n int, out *float32)
// out[j] = Σ_i f16(k[j*stride+i]) * q[i] for j < n; hd is a multiple of 8,
// stride is in elements: tinyBLAS's order, one 8-lane accumulator per row,
// then hsum8.
TEXT ·scoresF16AVX2(SB), NOSPLIT, $0-48
	MOVQ k+0(FP), SI
	MOVQ stride+8(FP), R9
	SHLQ $1, R9
	MOVQ q+16(FP), R10
	MOVQ hd+24(FP), R11
	SHRQ $3, R11
	MOVQ n+32(FP), CX
	MOVQ out+40(FP), DX
	// two rows at a time: independent accumulator chains
sc2row:
	CMPQ CX, $2
	JB scrow
	MOVQ SI, AX
	LEAQ (SI)(R9*1), R12
	MOVQ R10, DI
	MOVQ R11, BX
	VXORPS Y0, Y0, Y0
	VXORPS Y2, Y2, Y2
sc2col:
	VCVTPH2PS (AX), Y1
	VFMADD231PS (DI), Y1, Y0
	VCVTPH2PS (R12), Y3
	VFMADD231PS (DI), Y3, Y2
	ADDQ $16, AX
	ADDQ $16, R12
	ADDQ $32, DI
	DECQ BX
	JNZ sc2col
	VEXTRACTF128 $1, Y0, X1
	VADDPS X0, X1, X0
	VMOVHLPS X0, X0, X1
	VADDPS X1, X0, X0
	VMOVSHDUP X0, X1
	VADDSS X1, X0, X0
	MOVSS X0, (DX)
	VEXTRACTF128 $1, Y2, X3
	VADDPS X2, X3, X2
	VMOVHLPS X2, X2, X3
	VADDPS X3, X2, X2
	VMOVSHDUP X2, X3
	VADDSS X3, X2, X2
	MOVSS X2, 4(DX)
	ADDQ $8, DX
	LEAQ (SI)(R9*2), SI
	SUBQ $2, CX
	JMP sc2row
scrow:
	TESTQ CX, CX
	JZ scdone
	MOVQ SI, AX
	MOVQ R10, DI
	MOVQ R11, BX
	VXORPS Y0, Y0, Y0
sccol:
	VCVTPH2PS (AX), Y1
	VFMADD231PS (DI), Y1, Y0
	ADDQ $16, AX
	ADDQ $32, DI
	DECQ BX
	JNZ sccol
	VEXTRACTF128 $1, Y0, X1
	VADDPS X0, X1, X0
	VMOVHLPS X0, X0, X1
	VADDPS X1, X0, X0
	VMOVSHDUP X0, X1
	VADDSS X1, X0, X0
	MOVSS X0, (DX)
	ADDQ $4, DX
	ADDQ R9, SI
	DECQ CX
	JMP scrow
scdone:
	VZEROUPPER
	RET

// func scoresF16VecAVX2(k *uint16, stride int, q *float32, hd int, n int, out *float32)
// out[j] = ggml_vec_dot_f16(k row j, q) for j < n; hd is a multiple of 32:
// four accumulators take elements 8a..8a+7 of every 32, then
// GGML_F32x8_REDUCE ((0+2)+(1+3), upper half onto lower, two hadds).
TEXT ·scoresF16VecAVX2(SB), NOSPLIT, $0-48
	MOVQ k+0(FP), SI
	MOVQ stride+8(FP), R9
	SHLQ $1, R9
	MOVQ q+16(FP), R10
	MOVQ hd+24(FP), R11
	SHRQ $5, R11
	MOVQ n+32(FP), CX
	MOVQ out+40(FP), DX
svrow:
	TESTQ CX, CX
	JZ svdone
	MOVQ SI, AX
	MOVQ R10, DI
	MOVQ R11, BX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
svcol:
	VCVTPH2PS (AX), Y4
	VFMADD231PS (DI), Y4, Y0
	VCVTPH2PS 16(AX), Y4
	VFMADD231PS 32(DI), Y4, Y1
	VCVTPH2PS 32(AX), Y4
	VFMADD231PS 64(DI), Y4, Y2
	VCVTPH2PS 48(AX), Y4
	VFMADD231PS 96(DI), Y4, Y3
	ADDQ $64, AX
	ADDQ $128, DI
	DECQ BX
	JNZ svcol
	VADDPS Y2, Y0, Y0
	VADDPS Y3, Y1, Y1
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	MOVSS X0, (DX)
	ADDQ $4, DX
	ADDQ R9, SI
	DECQ CX
	JMP svrow
svdone:
	VZEROUPPER
	RET

// func mixAccF16AVX2(acc *float32, v *uint16, stride int, p *float32, hd int, n int, lanes int)
// For j < n: acc[(j%lanes)*hd + d] = fma(f16(v[j*stride+d]), p[j], that)
// for every d < hd (a multiple of 8): the per-lane accumulators of
// ggml_vec_dot_f16 (lanes 32) or tinyBLAS (lanes 8) along the positions.
TEXT ·mixAccF16AVX2(SB), NOSPLIT, $0-56
	MOVQ acc+0(FP), R12
	MOVQ v+8(FP), SI
	MOVQ stride+16(FP), R9
	SHLQ $1, R9
	MOVQ p+24(FP), R10
	MOVQ hd+32(FP), R11
	MOVQ n+40(FP), CX
	MOVQ lanes+48(FP), R13
	MOVQ R11, R14
	SHLQ $2, R14          // bytes per accumulator row
	XORQ R15, R15         // j % lanes
mxrow:
	TESTQ CX, CX
	JZ mxdone
	VBROADCASTSS (R10), Y5
	MOVQ R15, DI
	IMULQ R14, DI
	ADDQ R12, DI          // accumulator row
	MOVQ SI, AX
	MOVQ R11, BX
	SHRQ $3, BX
mxcol:
	VCVTPH2PS (AX), Y4
	VMOVUPS (DI), Y6
	VFMADD231PS Y5, Y4, Y6
	VMOVUPS Y6, (DI)
	ADDQ $16, AX
	ADDQ $32, DI
	DECQ BX
	JNZ mxcol
	ADDQ R9, SI
	ADDQ $4, R10
	INCQ R15
	CMPQ R15, R13
	JNE mxnext
	XORQ R15, R15
mxnext:
	DECQ CX
	JMP mxrow
mxdone:
	VZEROUPPER
	RET

// func expAVX2(dst, src *float32, s float32, neg int, n int, tab *[80]float32)
// dst[i] = ggml_v_expf(src[i] - s) (or s - src[i] when neg != 0) for
// n (a multiple of 8) elements, with ggml's instruction sequence for lanes
// whose |n| <= 126 (the caller keeps larger inputs off this path). tab holds
// the constants, each broadcast to 8 lanes: shift, log2e, ln2hi, ln2lo,
// c1..c5, one.
TEXT ·expAVX2(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	VBROADCASTSS s+16(FP), Y15
	MOVQ neg+24(FP), DX
	MOVQ n+32(FP), CX
	MOVQ tab+40(FP), R8
	SHRQ $3, CX
exploop:
	TESTQ CX, CX
	JZ expdone
	VMOVUPS (SI), Y1
	TESTQ DX, DX
	JNZ expneg
	VSUBPS Y15, Y1, Y0
	JMP expgo
expneg:
	VSUBPS Y1, Y15, Y0
expgo:
	VMOVUPS (R8), Y2            // z = fma(x, log2e, shift)
	VFMADD231PS 32(R8), Y0, Y2
	VSUBPS (R8), Y2, Y3         // n = z - shift
	VMOVAPS Y0, Y4              // b = x - n*ln2hi - n*ln2lo (fused)
	VFNMADD231PS 64(R8), Y3, Y4
	VFNMADD231PS 96(R8), Y3, Y4
	VPSLLD $23, Y2, Y5          // k = (z << 23) + bits(1)
	VPADDD 288(R8), Y5, Y5
	VMULPS Y4, Y4, Y6           // u = b*b
	VMOVUPS 224(R8), Y7         // A = fma(c5, b, c4)
	VFMADD231PS 256(R8), Y4, Y7
	VMOVUPS 160(R8), Y8         // B = fma(c3, b, c2)
	VFMADD231PS 192(R8), Y4, Y8
	VFMADD231PS Y6, Y7, Y8      // B = fma(A, u, B)
	VMULPS 128(R8), Y4, Y9      // C = c1*b
	VFMADD231PS Y6, Y8, Y9      // j = fma(B, u, C)
	VFMADD231PS Y5, Y9, Y5      // k*j + k
	VMOVUPS Y5, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JMP exploop
expdone:
	VZEROUPPER
	RET

// Eight-row Q4_0 kernels over weights repacked by PackQ4_0x8: the eight
// rows' results are the eight lanes of one vector, so each row's block sum
// is fused-multiply-added lane-wise (the repacked kernels' order, bit for
// bit the one-row kernel's) with no horizontal sum per row. A packed block
// is 8 f16 scales (lane order 0,2,4,6,1,3,5,7) then four 32-byte pairs:
// row 2p's 16 nibble bytes, then row 2p+1's. An activation block (PrepQ8_0x)
// is 32 int8, the f32 scale and 8·Σq as int32.

DATA q4x8mask<>+0(SB)/8, $0x0F0F0F0F0F0F0F0F
DATA q4x8mask<>+8(SB)/8, $0x0F0F0F0F0F0F0F0F
DATA q4x8mask<>+16(SB)/8, $0x0F0F0F0F0F0F0F0F
DATA q4x8mask<>+24(SB)/8, $0x0F0F0F0F0F0F0F0F
GLOBL q4x8mask<>(SB), RODATA|NOPTR, $32

DATA q4x8ones<>+0(SB)/8, $0x0001000100010001
DATA q4x8ones<>+8(SB)/8, $0x0001000100010001
DATA q4x8ones<>+16(SB)/8, $0x0001000100010001
DATA q4x8ones<>+24(SB)/8, $0x0001000100010001
GLOBL q4x8ones<>(SB), RODATA|NOPTR, $32

// Q4X8UNPACK: the pair at off(SI) into lo (elements 0..15 of both rows)
// and hi (16..31); tmp is clobbered.
#define Q4X8UNPACK(off, lo, hi, tmp) \
	VMOVDQU off(SI), hi \
	VPSRLW $4, hi, tmp \
	VPAND q4x8mask<>(SB), hi, lo \
	VPAND q4x8mask<>(SB), tmp, hi

// Q4X8PAIR: int32 partial sums of a row pair (low lane: row 2p, high: 2p+1)
// against the broadcast activation halves alo/ahi, into dst; tmp clobbered.
#define Q4X8PAIR(lo, hi, alo, ahi, dst, tmp) \
	VPMADDUBSW alo, lo, dst \
	VPMADDUBSW ahi, hi, tmp \
	VPADDW tmp, dst, dst \
	VPMADDWD q4x8ones<>(SB), dst, dst

// Q4X8SUMS: the eight rows' exact block sums against the activation block
// at areg as floats into Y13 (lanes 0,2,4,6,1,3,5,7) and d_w·d_a into Y14.
// Uses Y0-Y8 (the unpacked block); clobbers Y9-Y12.
#define Q4X8SUMS(areg) \
	VBROADCASTI128 (areg), Y11 \
	VBROADCASTI128 16(areg), Y12 \
	Q4X8PAIR(Y0, Y1, Y11, Y12, Y13, Y9) \
	Q4X8PAIR(Y2, Y3, Y11, Y12, Y14, Y9) \
	VPHADDD Y14, Y13, Y13 \
	Q4X8PAIR(Y4, Y5, Y11, Y12, Y14, Y9) \
	Q4X8PAIR(Y6, Y7, Y11, Y12, Y10, Y9) \
	VPHADDD Y10, Y14, Y14 \
	VPHADDD Y14, Y13, Y13 \
	VPBROADCASTD 36(areg), Y14 \
	VPSUBD Y14, Y13, Y13 \
	VCVTDQ2PS Y13, Y13 \
	VBROADCASTSS 32(areg), Y14 \
	VMULPS Y8, Y14, Y14

#define Q4X8WEIGHTS \
	VCVTPH2PS (SI), Y8 \
	Q4X8UNPACK(16, Y0, Y1, Y9) \
	Q4X8UNPACK(48, Y2, Y3, Y9) \
	Q4X8UNPACK(80, Y4, Y5, Y9) \
	Q4X8UNPACK(112, Y6, Y7, Y9)

// func gemvQ4_0x8AVX2(w *byte, nb int, a *byte, acc *[8]float32)
// One activation row against eight packed rows: acc (lanes as packed) =
// per row Σ_blocks fma(float(isum), d_w·d_a, ·), starting from zero.
TEXT ·gemvQ4_0x8AVX2(SB), NOSPLIT, $0-32
	MOVQ w+0(FP), SI
	MOVQ nb+8(FP), CX
	MOVQ a+16(FP), DI
	VXORPS Y15, Y15, Y15
q4x8vloop:
	TESTQ CX, CX
	JZ q4x8vdone
	Q4X8WEIGHTS
	Q4X8SUMS(DI)
	VFMADD231PS Y13, Y14, Y15
	ADDQ $144, SI
	ADDQ $40, DI
	DECQ CX
	JMP q4x8vloop
q4x8vdone:
	MOVQ acc+24(FP), DX
	VMOVUPS Y15, (DX)
	VZEROUPPER
	RET

// func gemmQ4_0x8AVX2(w *byte, nb int, a **byte, n int, acc *float32)
// gemvQ4_0x8AVX2 for n activation rows (a[t], each nb blocks) at once, each
// weight block unpacked once for all of them; acc[8t..8t+7] is row t's.
TEXT ·gemmQ4_0x8AVX2(SB), NOSPLIT, $0-40
	MOVQ w+0(FP), SI
	MOVQ nb+8(FP), CX
	MOVQ a+16(FP), R8
	MOVQ n+24(FP), R11
	MOVQ acc+32(FP), R10
	// zero the accumulators
	MOVQ R10, DX
	MOVQ R11, BX
	VXORPS Y15, Y15, Y15
q4x8mzero:
	VMOVUPS Y15, (DX)
	ADDQ $32, DX
	DECQ BX
	JNZ q4x8mzero
	XORQ R9, R9 // byte offset of the current block in an activation row
q4x8mloop:
	TESTQ CX, CX
	JZ q4x8mdone
	Q4X8WEIGHTS
	MOVQ R10, DX
	XORQ BX, BX
q4x8mtok:
	MOVQ (R8)(BX*8), DI
	ADDQ R9, DI
	Q4X8SUMS(DI)
	VMOVUPS (DX), Y15
	VFMADD231PS Y13, Y14, Y15
	VMOVUPS Y15, (DX)
	ADDQ $32, DX
	INCQ BX
	CMPQ BX, R11
	JNE q4x8mtok
	ADDQ $144, SI
	ADDQ $40, R9
	DECQ CX
	JMP q4x8mloop
q4x8mdone:
	VZEROUPPER
	RET

// Eight-row Q4_K kernels over weights repacked by PackQ4_Kx8, one row per
// lane (lane order 0,2,4,6,1,3,5,7). A packed super-block of eight rows:
// 0: d[8] f16, 16: dmin[8] f16, 32: scales[8][8] (sub-block-major, lane
// order), 96: per row pair p the 8 mins of row 2p then of row 2p+1,
// 160: per sub-block pair j and row pair p two 32-byte vectors, the first
// holding bytes 0..15 of the chunk of row 2p and of row 2p+1, the second
// bytes 16..31. Every integer sum is exact, and the float steps per row are
// those of DotQ4_K (gemv) or DotQ4_KTile (gemm), lane-wise.

// Q4KX8PAIR: chunk pair at off(SI) against the broadcast activations in
// Y0-Y3 (a1 bytes 0..15, 16..31; a2 bytes 0..15, 16..31): int32 sums of
// row 2p (low lane) and 2p+1 (high lane) for the low nibbles into plo and
// the high ones into phi. Clobbers Y12-Y15 (plo/phi may be Y11/Y12).
#define Q4KX8PAIR(off, plo, phi) \
	VMOVDQU off(SI), Y12 \
	VPSRLW $4, Y12, Y13 \
	VPAND q4x8mask<>(SB), Y12, Y12 \
	VPAND q4x8mask<>(SB), Y13, Y13 \
	VMOVDQU off+32(SI), Y14 \
	VPSRLW $4, Y14, Y15 \
	VPAND q4x8mask<>(SB), Y14, Y14 \
	VPAND q4x8mask<>(SB), Y15, Y15 \
	VPMADDUBSW Y0, Y12, Y12 \
	VPMADDUBSW Y1, Y14, Y14 \
	VPADDW Y14, Y12, Y12 \
	VPMADDWD q4x8ones<>(SB), Y12, plo \
	VPMADDUBSW Y2, Y13, Y13 \
	VPMADDUBSW Y3, Y15, Y15 \
	VPADDW Y15, Y13, Y13 \
	VPMADDWD q4x8ones<>(SB), Y13, phi

// Q4KX8J: sub-block pair j of the super-block for the token at DI: leaves
// s(2j)·sum(2j) + s(2j+1)·sum(2j+1) per row (lanes) in Y7. Clobbers Y0-Y3,
// Y7-Y15.
#define Q4KX8J(j) \
	VBROADCASTI128 4+64*j(DI), Y0 \
	VBROADCASTI128 20+64*j(DI), Y1 \
	VBROADCASTI128 36+64*j(DI), Y2 \
	VBROADCASTI128 52+64*j(DI), Y3 \
	Q4KX8PAIR(160+256*j, Y7, Y8) \
	Q4KX8PAIR(224+256*j, Y9, Y10) \
	VPHADDD Y9, Y7, Y7 \
	VPHADDD Y10, Y8, Y8 \
	Q4KX8PAIR(288+256*j, Y9, Y10) \
	Q4KX8PAIR(352+256*j, Y11, Y12) \
	VPHADDD Y11, Y9, Y9 \
	VPHADDD Y12, Y10, Y10 \
	VPHADDD Y9, Y7, Y7 \
	VPHADDD Y10, Y8, Y8 \
	VPMOVZXBD 32+16*j(SI), Y9 \
	VPMULLD Y9, Y7, Y7 \
	VPMOVZXBD 40+16*j(SI), Y10 \
	VPMULLD Y10, Y8, Y8 \
	VPADDD Y8, Y7, Y7

// Q4KX8MINS: the four row pairs' mins times the token's bsum pairs: Y10-Y13
// hold, for row 2p (low lane) and 2p+1 (high lane), the four per-sub-block-
// pair sums m(2j)·B(2j) + m(2j+1)·B(2j+1). Clobbers Y9.
#define Q4KX8MINS \
	VMOVDQU 260(DI), Y9 \
	VEXTRACTI128 $1, Y9, X10 \
	VPHADDW X10, X9, X9 \
	VINSERTI128 $1, X9, Y9, Y9 \
	VPMOVZXBW 96(SI), Y10 \
	VPMADDWD Y9, Y10, Y10 \
	VPMOVZXBW 112(SI), Y11 \
	VPMADDWD Y9, Y11, Y11 \
	VPMOVZXBW 128(SI), Y12 \
	VPMADDWD Y9, Y12, Y12 \
	VPMOVZXBW 144(SI), Y13 \
	VPMADDWD Y9, Y13, Y13

// Q4KX8SCALE: Y15 = f16 vector at off(SI) times the token's scale.
#define Q4KX8SCALE(off) \
	VBROADCASTSS (DI), Y14 \
	VCVTPH2PS off(SI), Y15 \
	VMULPS Y14, Y15, Y15

// Q4KX8FRAME: register set-up shared by both gemm kernels.
#define Q4KX8FRAME \
	MOVQ w+0(FP), SI \
	MOVQ nb+8(FP), CX \
	MOVQ a+16(FP), R8 \
	MOVQ n+24(FP), R11 \
	MOVQ acc+32(FP), R10 \
	MOVQ R10, DX \
	MOVQ R11, BX \
	VXORPS Y15, Y15, Y15

// Q4KX8ZERO / Q4KX8FINISH: zero the n×16 scratch floats (acc, accm per
// token); at the end leave acc-accm in each token's first 8.
#define Q4KX8FINISH(label) \
	MOVQ R10, DX \
	MOVQ R11, BX \
label: \
	VMOVUPS (DX), Y5 \
	VSUBPS 32(DX), Y5, Y5 \
	VMOVUPS Y5, (DX) \
	ADDQ $64, DX \
	DECQ BX \
	JNZ label

// func gemmQ4_Kx8AVX2(w *byte, nb int, a **Q8K, n int, acc *float32)
// DotQ4_K's steps (ggml_gemv_q4_K_8x8_q8_K) for n tokens and eight packed
// rows: per super-block one fma of the scales' sum and one of the mins'.
TEXT ·gemmQ4_Kx8AVX2(SB), NOSPLIT, $0-40
	Q4KX8FRAME
q4kx8zero:
	VMOVUPS Y15, (DX)
	VMOVUPS Y15, 32(DX)
	ADDQ $64, DX
	DECQ BX
	JNZ q4kx8zero
	XORQ R9, R9
q4kx8sb:
	TESTQ CX, CX
	JZ q4kx8done
	MOVQ R10, DX
	XORQ BX, BX
q4kx8tok:
	MOVQ (R8)(BX*8), DI
	ADDQ R9, DI
	Q4KX8MINS
	VPHADDD Y11, Y10, Y10
	VPHADDD Y13, Y12, Y12
	VPHADDD Y12, Y10, Y10
	VCVTDQ2PS Y10, Y10
	Q4KX8SCALE(16)
	VMOVUPS 32(DX), Y6
	VFMADD231PS Y10, Y15, Y6
	VMOVUPS Y6, 32(DX)
	Q4KX8J(0)
	VMOVDQA Y7, Y4
	Q4KX8J(1)
	VPADDD Y7, Y4, Y4
	Q4KX8J(2)
	VPADDD Y7, Y4, Y4
	Q4KX8J(3)
	VPADDD Y7, Y4, Y4
	VCVTDQ2PS Y4, Y4
	Q4KX8SCALE(0)
	VMOVUPS (DX), Y5
	VFMADD231PS Y4, Y15, Y5
	VMOVUPS Y5, (DX)
	ADDQ $64, DX
	INCQ BX
	CMPQ BX, R11
	JNE q4kx8tok
	ADDQ $1184, SI
	ADDQ $292, R9
	DECQ CX
	JMP q4kx8sb
q4kx8done:
	Q4KX8FINISH(q4kx8fin)
	VZEROUPPER
	RET

// Q4KX8JT: sub-block pair j, fused-multiply-added into acc (Y5) with the
// d·a.D vector in Y4 (DotQ4_KTile's per-pair step).
#define Q4KX8JT(j) \
	Q4KX8J(j) \
	VCVTDQ2PS Y7, Y7 \
	VFMADD231PS Y7, Y4, Y5

// func gemmQ4_Kx8TileAVX2(w *byte, nb int, a **Q8K, n int, acc *float32)
// DotQ4_KTile's steps (ggml_gemm_q4_K_8x8_q8_K) for n tokens and eight
// packed rows: one fma per sub-block pair for the scales and for the mins.
TEXT ·gemmQ4_Kx8TileAVX2(SB), NOSPLIT, $0-40
	Q4KX8FRAME
q4kx8tzero:
	VMOVUPS Y15, (DX)
	VMOVUPS Y15, 32(DX)
	ADDQ $64, DX
	DECQ BX
	JNZ q4kx8tzero
	XORQ R9, R9
q4kx8tsb:
	TESTQ CX, CX
	JZ q4kx8tdone
	MOVQ R10, DX
	XORQ BX, BX
q4kx8ttok:
	MOVQ (R8)(BX*8), DI
	ADDQ R9, DI
	Q4KX8MINS
	// transpose to one vector per sub-block pair (rows in lanes)
	VPUNPCKLDQ Y11, Y10, Y14
	VPUNPCKHDQ Y11, Y10, Y10
	VPUNPCKLDQ Y13, Y12, Y11
	VPUNPCKHDQ Y13, Y12, Y12
	VPUNPCKLQDQ Y11, Y14, Y13
	VPUNPCKHQDQ Y11, Y14, Y14
	VPUNPCKLQDQ Y12, Y10, Y11
	VPUNPCKHQDQ Y12, Y10, Y12
	VCVTDQ2PS Y13, Y13
	VCVTDQ2PS Y14, Y14
	VCVTDQ2PS Y11, Y11
	VCVTDQ2PS Y12, Y12
	VBROADCASTSS (DI), Y9
	VCVTPH2PS 16(SI), Y15
	VMULPS Y9, Y15, Y15
	VMOVUPS 32(DX), Y6
	VFMADD231PS Y13, Y15, Y6
	VFMADD231PS Y14, Y15, Y6
	VFMADD231PS Y11, Y15, Y6
	VFMADD231PS Y12, Y15, Y6
	VMOVUPS Y6, 32(DX)
	VCVTPH2PS (SI), Y4
	VMULPS Y9, Y4, Y4
	VMOVUPS (DX), Y5
	Q4KX8JT(0)
	Q4KX8JT(1)
	Q4KX8JT(2)
	Q4KX8JT(3)
	VMOVUPS Y5, (DX)
	ADDQ $64, DX
	INCQ BX
	CMPQ BX, R11
	JNE q4kx8ttok
	ADDQ $1184, SI
	ADDQ $292, R9
	DECQ CX
	JMP q4kx8tsb
q4kx8tdone:
	Q4KX8FINISH(q4kx8tfin)
	VZEROUPPER
	RET

// Q80T: one (row, token) cell of the 2x4 Q8_0 tile: the block at woff(wreg)
// with |w| in wabs and d_w broadcast in dw, against the token block in Y12
// (d_a broadcast in Y13), into acc with dotQ8_0AVX2's steps.
#define Q80T(wreg, wabs, dw, acc) \
	VPSIGNB 2(wreg), Y12, Y14 \
	VPMADDUBSW Y14, wabs, Y14 \
	VPMADDWD q4x8ones<>(SB), Y14, Y14 \
	VCVTDQ2PS Y14, Y14 \
	VMULPS Y13, dw, Y15 \
	VFMADD231PS Y14, Y15, acc

#define Q80TTOK(areg, acc0, acc1) \
	VMOVDQU 2(areg), Y12 \
	MOVWLZX (areg), AX \
	VBROADCASTSS (R8)(AX*4), Y13 \
	Q80T(SI, Y8, Y10, acc0) \
	Q80T(R9, Y9, Y11, acc1) \
	ADDQ $34, areg

// func f32ToF16AVX2(dst *uint16, src *float32, n int)
// n (a multiple of 8) conversions with round-to-nearest-even, as F32ToF16.
TEXT ·f32ToF16AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JZ f16cdone
f16cloop:
	VMOVUPS (SI), Y0
	VCVTPS2PH $0, Y0, X1
	VMOVDQU X1, (DI)
	ADDQ $32, SI
	ADDQ $16, DI
	DECQ CX
	JNZ f16cloop
f16cdone:
	VZEROUPPER
	RET

// func scaleRoundF16AVX2(dst, src *float32, s float32, n int)
// dst[i] = RoundF16(src[i]*s) for n (a multiple of 8) elements.
TEXT ·scaleRoundF16AVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	VBROADCASTSS s+16(FP), Y2
	MOVQ n+24(FP), CX
	SHRQ $3, CX
	JZ srdone
srloop:
	VMULPS (SI), Y2, Y0
	VCVTPS2PH $0, Y0, X1
	VCVTPH2PS X1, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ srloop
srdone:
	VZEROUPPER
	RET

DATA ropesign<>+0(SB)/8, $0x0000000080000000
DATA ropesign<>+8(SB)/8, $0x0000000080000000
DATA ropesign<>+16(SB)/8, $0x0000000080000000
DATA ropesign<>+24(SB)/8, $0x0000000080000000
GLOBL ropesign<>(SB), RODATA|NOPTR, $32

// func ropePairsAVX2(x, cs *float32, n int)
// For adjacent pairs (x0, x1) with (c, s): x0' = fma(x0, c, -(x1·s)),
// x1' = fma(x0, s, x1·c), n (a multiple of 8) elements in place.
TEXT ·ropePairsAVX2(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	MOVQ cs+8(FP), DI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JZ ropedone
ropeloop:
	VMOVUPS (SI), Y0
	VMOVUPS (DI), Y1
	VMOVSHDUP Y0, Y2
	VMOVSLDUP Y0, Y3
	VPERMILPS $0xB1, Y1, Y4
	VMULPS Y4, Y2, Y5
	VXORPS ropesign<>(SB), Y5, Y5
	VFMADD231PS Y1, Y3, Y5
	VMOVUPS Y5, (SI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ ropeloop
ropedone:
	VZEROUPPER
	RET

DATA absmask<>+0(SB)/8, $0x7FFFFFFF7FFFFFFF
DATA absmask<>+8(SB)/8, $0x7FFFFFFF7FFFFFFF
DATA absmask<>+16(SB)/8, $0x7FFFFFFF7FFFFFFF
DATA absmask<>+24(SB)/8, $0x7FFFFFFF7FFFFFFF
GLOBL absmask<>(SB), RODATA|NOPTR, $32

DATA packperm<>+0(SB)/4, $0
DATA packperm<>+4(SB)/4, $4
DATA packperm<>+8(SB)/4, $1
DATA packperm<>+12(SB)/4, $5
DATA packperm<>+16(SB)/4, $2
DATA packperm<>+20(SB)/4, $6
DATA packperm<>+24(SB)/4, $3
DATA packperm<>+28(SB)/4, $7
GLOBL packperm<>(SB), RODATA|NOPTR, $32

// HMAXPS: the largest of the eight lanes of y (x its low half) into every
// lane of x; tmp clobbered.
#define HMAXPS(y, x, tmp) \
	VEXTRACTF128 $1, y, tmp \
	VMAXPS tmp, x, x \
	VMOVHLPS x, x, tmp \
	VMAXPS tmp, x, x \
	VMOVSHDUP x, tmp \
	VMAXPS tmp, x, x \
	VBROADCASTSS x, y

// Q8PACK32: the 32 floats at off(SI) times Y5, rounded to nearest even,
// saturated to int8 and stored in order at doff(DI). Clobbers Y0-Y3.
#define Q8PACK32(off, doff) \
	VMULPS off(SI), Y5, Y0 \
	VMULPS off+32(SI), Y5, Y1 \
	VMULPS off+64(SI), Y5, Y2 \
	VMULPS off+96(SI), Y5, Y3 \
	VROUNDPS $0, Y0, Y0 \
	VROUNDPS $0, Y1, Y1 \
	VROUNDPS $0, Y2, Y2 \
	VROUNDPS $0, Y3, Y3 \
	VCVTPS2DQ Y0, Y0 \
	VCVTPS2DQ Y1, Y1 \
	VCVTPS2DQ Y2, Y2 \
	VCVTPS2DQ Y3, Y3 \
	VPACKSSDW Y1, Y0, Y0 \
	VPACKSSDW Y3, Y2, Y2 \
	VPACKSSWB Y2, Y0, Y0 \
	VPERMD Y0, Y6, Y0 \
	VMOVDQU Y0, doff(DI)

// func quantizeQ8_0AVX2(dst *byte, x *float32, nb int)
// ggml's AVX2 quantize_row_q8_0: per 32 values d = amax/127 (stored as
// f16), q = round-to-nearest-even(x·127/amax).
TEXT ·quantizeQ8_0AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ nb+16(FP), CX
	VMOVDQU packperm<>(SB), Y6
	VMOVUPS absmask<>(SB), Y7
	MOVL $0x42FE0000, AX // 127
	VMOVD AX, X8
q8qloop:
	TESTQ CX, CX
	JZ q8qdone
	VANDPS (SI), Y7, Y0
	VANDPS 32(SI), Y7, Y1
	VANDPS 64(SI), Y7, Y2
	VANDPS 96(SI), Y7, Y3
	VMAXPS Y1, Y0, Y0
	VMAXPS Y3, Y2, Y2
	VMAXPS Y2, Y0, Y0
	HMAXPS(Y0, X0, X1)
	VDIVSS X8, X0, X1 // d = amax / 127
	VCVTPS2PH $0, X1, X1
	VMOVD X1, AX
	MOVW AX, (DI)
	VXORPS X5, X5, X5
	VUCOMISS X5, X0
	JEQ q8qzero
	VDIVSS X0, X8, X5 // id = 127 / amax
q8qzero:
	VBROADCASTSS X5, Y5
	Q8PACK32(0, 2)
	ADDQ $128, SI
	ADDQ $34, DI
	DECQ CX
	JMP q8qloop
q8qdone:
	VZEROUPPER
	RET

// func quantizeQ8_KAVX2(y *Q8K, x *float32, nb int)
// quantize_row_q8_K_ref's values per 256: the signed value of largest
// magnitude (the first one, on ties) sets iscale = -127/max; q =
// min(127, round-to-nearest-even(iscale·x)); D = 1/iscale. An all-zero
// block is left for the caller (D = 0 marks it). Bsums are the caller's.
TEXT ·quantizeQ8_KAVX2(SB), NOSPLIT, $0-24
	MOVQ y+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ nb+16(FP), CX
	VMOVDQU packperm<>(SB), Y6
	VMOVUPS absmask<>(SB), Y7
	MOVL $0xC2FE0000, AX // -127
	VMOVD AX, X8
q8kqloop:
	TESTQ CX, CX
	JZ q8kqdone
	// amax
	VANDPS (SI), Y7, Y0
	MOVQ $1, BX
q8kmax:
	MOVQ BX, AX
	SHLQ $5, AX
	VANDPS (SI)(AX*1), Y7, Y1
	VMAXPS Y1, Y0, Y0
	INCQ BX
	CMPQ BX, $32
	JNE q8kmax
	HMAXPS(Y0, X0, X1)
	VXORPS X5, X5, X5
	VUCOMISS X5, X0
	JNE q8knonzero
	MOVL $0, (DI)
	JMP q8knext
q8knonzero:
	// first element whose magnitude is amax
	XORQ BX, BX
q8kfind:
	MOVQ BX, AX
	SHLQ $5, AX
	VANDPS (SI)(AX*1), Y7, Y1
	VCMPPS $0, Y0, Y1, Y1
	VMOVMSKPS Y1, DX
	TESTL DX, DX
	JNZ q8kfound
	INCQ BX
	JMP q8kfind
q8kfound:
	BSFL DX, DX
	SHLQ $3, BX
	ADDQ DX, BX
	VMOVSS (SI)(BX*4), X1 // mx
	VDIVSS X1, X8, X5     // iscale = -127 / mx
	MOVL $0x3F800000, AX  // 1
	VMOVD AX, X2
	VDIVSS X5, X2, X2     // D = 1 / iscale
	VMOVSS X2, (DI)
	VBROADCASTSS X5, Y5
	MOVQ $8, BX
	MOVQ DI, R9
	ADDQ $4, DI
q8kpack:
	Q8PACK32(0, 0)
	ADDQ $128, SI
	ADDQ $32, DI
	DECQ BX
	JNZ q8kpack
	SUBQ $1024, SI
	MOVQ R9, DI
q8knext:
	ADDQ $1024, SI
	ADDQ $292, DI
	DECQ CX
	JMP q8kqloop
q8kqdone:
	VZEROUPPER
	RET

// func swigluAVX2(gp, ex, u *float32, n int)
// g[i] = g[i] / (1 + ex[i]) * u[i] for n (a multiple of 8) elements.
TEXT ·swigluAVX2(SB), NOSPLIT, $0-32
	MOVQ gp+0(FP), DI
	MOVQ ex+8(FP), SI
	MOVQ u+16(FP), DX
	MOVQ n+24(FP), CX
	SHRQ $3, CX
	JZ swdone
	MOVL $0x3F800000, AX
	VMOVD AX, X7
	VBROADCASTSS X7, Y7
swloop:
	VADDPS (SI), Y7, Y1
	VMOVUPS (DI), Y0
	VDIVPS Y1, Y0, Y0
	VMULPS (DX), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, DI
	ADDQ $32, SI
	ADDQ $32, DX
	DECQ CX
	JNZ swloop
swdone:
	VZEROUPPER
	RET

// func scaleMaxAVX2(x *float32, s float32, n int) float32
// x[i] *= s for n (a multiple of 8, > 0) elements; returns the largest.
TEXT ·scaleMaxAVX2(SB), NOSPLIT, $0-28
	MOVQ x+0(FP), DI
	VBROADCASTSS s+8(FP), Y7
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	VMULPS (DI), Y7, Y0
	VMOVUPS Y0, (DI)
	VMOVAPS Y0, Y2
	ADDQ $32, DI
	DECQ CX
	JZ smdone
smloop:
	VMULPS (DI), Y7, Y0
	VMOVUPS Y0, (DI)
	VMAXPS Y0, Y2, Y2
	ADDQ $32, DI
	DECQ CX
	JNZ smloop
smdone:
	HMAXPS(Y2, X2, X1)
	VZEROUPPER
	MOVSS X2, ret+24(FP)
	RET

// func sum8AVX2(p *float32, n int) float64
// ggml_vec_soft_max_f32's sum over n (a multiple of 8) values: per eight,
// (l0+l4 + l2+l6) + (l1+l5 + l3+l7) in float32, added in float64 in turn.
TEXT ·sum8AVX2(SB), NOSPLIT, $0-24
	MOVQ p+0(FP), SI
	MOVQ n+8(FP), CX
	SHRQ $3, CX
	VXORPD X3, X3, X3
	TESTQ CX, CX
	JZ s8done
s8loop:
	VMOVUPS (SI), Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X0, X1, X0
	VMOVHLPS X0, X0, X1
	VADDPS X1, X0, X0
	VMOVSHDUP X0, X1
	VADDSS X1, X0, X0
	VCVTSS2SD X0, X0, X0
	VADDSD X0, X3, X3
	ADDQ $32, SI
	DECQ CX
	JNZ s8loop
s8done:
	VZEROUPPER
	MOVSD X3, ret+16(FP)
	RET

// QOUTP: QOUT's additions (X14/X15 as temporaries), the sum stored at
// outoff(BX)(DX*1).
#define QOUTP(acc, accx, outoff) \
	VEXTRACTF128 $1, acc, X15 \
	VADDPS accx, X15, X14 \
	VMOVHLPS X14, X14, X15 \
	VADDPS X15, X14, X14 \
	VMOVSHDUP X14, X15 \
	VADDSS X15, X14, X14 \
	MOVSS X14, outoff(BX)(DX*1)

// Q80TSTORE: the two rows' results for token t of the group at out[t][row],
// out[t][row+1].
#define Q80TSTORE(t, acc0, acc0x, acc1, acc1x) \
	MOVQ 8*t(R11), BX \
	QOUTP(acc0, acc0x, 0) \
	QOUTP(acc1, acc1x, 4)

// func dotQ8_0TilesAVX2(w *byte, rowBytes int, a **byte, out **float32, row int, groups int, nb int, tab *float32)
// Two consecutive rows (w, w+rowBytes) against groups groups of four tokens
// (a[4g..4g+3]), storing row r's result for token t at out[t][row+r]. Each
// weight and activation block is loaded once for eight products, and per
// (row, token) the steps are dotQ8_0AVX2's, so the results are
// bit-identical to it.
TEXT ·dotQ8_0TilesAVX2(SB), NOSPLIT, $0-64
	MOVQ a+16(FP), R10
	MOVQ out+24(FP), R11
	MOVQ row+32(FP), DX
	SHLQ $2, DX
	MOVQ groups+40(FP), R15
	MOVQ tab+56(FP), R8
q80tsgroup:
	MOVQ w+0(FP), SI
	MOVQ SI, R9
	ADDQ rowBytes+8(FP), R9
	MOVQ 0(R10), DI
	MOVQ 8(R10), R12
	MOVQ 16(R10), R13
	MOVQ 24(R10), R14
	MOVQ nb+48(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
q80tsloop:
	MOVWLZX (SI), AX
	VBROADCASTSS (R8)(AX*4), Y10
	MOVWLZX (R9), AX
	VBROADCASTSS (R8)(AX*4), Y11
	VMOVDQU 2(SI), Y8
	VPABSB Y8, Y8
	VMOVDQU 2(R9), Y9
	VPABSB Y9, Y9
	Q80TTOK(DI, Y0, Y4)
	Q80TTOK(R12, Y1, Y5)
	Q80TTOK(R13, Y2, Y6)
	Q80TTOK(R14, Y3, Y7)
	ADDQ $34, SI
	ADDQ $34, R9
	DECQ CX
	JNZ q80tsloop
	Q80TSTORE(0, Y0, X0, Y4, X4)
	Q80TSTORE(1, Y1, X1, Y5, X5)
	Q80TSTORE(2, Y2, X2, Y6, X6)
	Q80TSTORE(3, Y3, X3, Y7, X7)
	ADDQ $32, R10
	ADDQ $32, R11
	DECQ R15
	JNZ q80tsgroup
	VZEROUPPER
	RET

// func mixReduce8AVX2(dst, acc *float32, hd int)
// dst[d] = hsum8 of acc[l*hd+d], l < 8, as MixF16Tile's loop does it:
// r_i = acc[4+i] + acc[i], then (r0+r2) + (r1+r3); eight d at a time
// (hd a multiple of 8).
TEXT ·mixReduce8AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ acc+8(FP), SI
	MOVQ hd+16(FP), R9
	SHLQ $2, R9 // row bytes
	MOVQ hd+16(FP), CX
	SHRQ $3, CX
	JZ mr8done
	LEAQ (R9)(R9*2), R10 // 3 rows
mr8loop:
	MOVQ SI, AX
	VMOVUPS (AX), Y0           // l0
	VMOVUPS (AX)(R9*1), Y1     // l1
	VMOVUPS (AX)(R9*2), Y2     // l2
	VMOVUPS (AX)(R10*1), Y3    // l3
	LEAQ (AX)(R9*4), AX
	VADDPS (AX), Y0, Y0        // r0 = l4 + l0
	VADDPS (AX)(R9*1), Y1, Y1  // r1 = l5 + l1
	VADDPS (AX)(R9*2), Y2, Y2  // r2 = l6 + l2
	VADDPS (AX)(R10*1), Y3, Y3 // r3 = l7 + l3
	VADDPS Y2, Y0, Y0
	VADDPS Y3, Y1, Y1
	VADDPS Y1, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ mr8loop
mr8done:
	VZEROUPPER
	RET

// MR32X: lane l's x = (s0+s2) + (s1+s3) for eight d, the accumulator rows
// l, 8+l, 16+l, 24+l starting at AX (R11 = eight rows in bytes).
#define MR32X(dst) \
	LEAQ (AX)(R11*2), DX \
	VMOVUPS (AX), dst \
	VADDPS (DX), dst, dst \
	LEAQ (AX)(R11*1), R12 \
	VMOVUPS (R12), Y9 \
	LEAQ (R12)(R11*2), R12 \
	VADDPS (R12), Y9, Y9 \
	VADDPS Y9, dst, dst

// func mixReduce32AVX2(dst, acc *float32, hd int)
// dst[d] = reduceF16Vec of acc[c*hd+d], c < 32 (GGML_F32x8_REDUCE over
// accumulators s[c/8] lane c%8): x_l = (s0+s2) + (s1+s3) at lane l, then
// ((x0+x4) + (x1+x5)) + ((x2+x6) + (x3+x7)); eight d at a time.
TEXT ·mixReduce32AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ acc+8(FP), SI
	MOVQ hd+16(FP), R9
	SHLQ $2, R9
	MOVQ hd+16(FP), CX
	SHRQ $3, CX
	JZ mr32done
	MOVQ R9, R11
	SHLQ $3, R11 // 8 rows: one accumulator s
mr32loop:
	MOVQ SI, AX
	MR32X(Y0)
	ADDQ R9, AX
	MR32X(Y1)
	ADDQ R9, AX
	MR32X(Y2)
	ADDQ R9, AX
	MR32X(Y3)
	ADDQ R9, AX
	MR32X(Y4)
	ADDQ R9, AX
	MR32X(Y5)
	ADDQ R9, AX
	MR32X(Y6)
	ADDQ R9, AX
	MR32X(Y7)
	VADDPS Y4, Y0, Y0 // t0 = x0 + x4
	VADDPS Y5, Y1, Y1 // t1
	VADDPS Y6, Y2, Y2 // t2
	VADDPS Y7, Y3, Y3 // t3
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ mr32loop
mr32done:
	VZEROUPPER
	RET
