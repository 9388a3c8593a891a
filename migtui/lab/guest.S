/*
 * migtui lab guest: a 512-byte x86 boot sector that keeps dirtying memory,
 * modelled on QEMU's tests/migration/i386/a-b-bootblock.S.
 *
 * Real mode -> A20 on -> flat GDT -> 32-bit protected mode, then forever:
 * increment the first dword of every 4 KiB page of [start, end), sweep after
 * sweep (its low byte counts the sweeps, mod 256, for a reader of memory).
 *
 * A dword, not a byte: the range's pages are zero but for that counter, and a
 * byte counter wrapped to 0 every 256 sweeps, making its page all zero. QEMU
 * sends an all-zero page as a zero page (a few bytes, not 4 KiB), so while a
 * sweep wrapped, a pass cost almost nothing of the max-bandwidth, took next
 * to no time, found next to nothing dirtied and the migration converged: the
 * stuck scenario (16 MiB at 8 MiB/s, 2 s a sweep) completed after ~8m30s,
 * 255 sweeps in. A dword counter is zero again after 2^32 sweeps.
 * After a first, unpaced sweep it writes 'A' to COM1, then a 'B' about every
 * 100 ms, so `-serial file:...` keeps growing while the guest runs (a marker
 * after every sweep, as QEMU's guest writes, would be ~100 KB/s under KVM).
 *
 * Pacing: if ticks_per_page is not 0 the guest touches at most one page per
 * that many i8254 PIT ticks (1.193182 MHz), so the dirty rate is the same
 * under KVM and TCG. 0 means as fast as the vCPU goes (it spins).
 *
 * A paced guest sleeps while it waits (sti; hlt), so it costs the host a few
 * % of a core, not a whole one: PIT channel 0 interrupts at ~1 kHz (IRQ0, the
 * 8259 remapped to vector 0x20 with auto-EOI, every other IRQ masked) only to
 * wake it (1 kHz: finer than a page's period at the default 2.8 MiB/s, 1.4 ms,
 * so the writes stay evenly spaced). Time is
 * read from PIT channel 2, free-running (reload 65536, gate on through port
 * 0x61), at each wake-up: the credit grows by the ticks that really passed,
 * whether or not an interrupt was lost or late. The IDT's one gate is vector
 * 0x20's (the IDT base points 0x20 gates below it); higher vectors are past
 * its limit and lower ones read the sector's code as gates: an exception
 * faults on, as it did on the BIOS's real-mode table before.
 *
 * The patch block (PATCH_OFFSET in guest.py) holds "MTDR" then three
 * little-endian dwords: start, end, ticks_per_page. guest.py patches them,
 * so changing the range needs no assembler.
 *
 * Build: as --32 guest.S -o g.o && ld -m elf_i386 -Ttext 0x7c00 -e start g.o
 *        -o g.elf && objcopy -O binary -j .text g.elf guest.bin
 * (migtui/lab/build_guest.py does exactly this.)
 */

        .set PATCH_OFFSET, 0x1a0
        .set MARKER_TICKS, 119318       /* ~100 ms of PIT ticks */
        .set CREDIT_MAX, 65536          /* bounds a burst after a stall */
        .set WAKE_TICKS, 1193           /* channel 0 period: 1.0002 kHz */
        .set VECTOR, 0x20               /* IRQ0's vector once remapped */
        .set COM1, 0x3f8

/* eax = current count of PIT channel 2 (latched, 16 bits). */
        .macro READ_PIT
        mov $0x80, %eax
        outb %al, $0x43                 /* latch counter 2 */
        inb $0x42, %al
        mov %al, %ah
        inb $0x42, %al
        xchg %al, %ah                   /* ax = hi:lo */
        .endm

/* Advance the clock by the PIT ticks since the last read, add them to the
 * credit, and write a marker if 100 ms have passed. Clobbers eax, edx. */
        .macro TICK
        READ_PIT
        mov %esi, %edx
        mov %eax, %esi
        sub %ax, %dx                    /* elapsed = last - now, mod 65536 */
        movzwl %dx, %edx
        add %edx, %edi
        add %edx, %ecx
        cmp $CREDIT_MAX, %ecx
        jle 1f
        mov $CREDIT_MAX, %ecx
1:
        mov %edi, %eax
        sub %ebp, %eax
        cmp $MARKER_TICKS, %eax
        jb 2f
        mov %edi, %ebp
        mov $COM1, %dx
        mov $'B', %al
        outb %al, %dx
2:
        .endm

        .text
        .code16
        .globl start
start:
        cli
        cld
        xor %ax, %ax
        mov %ax, %ds
        /* A20 on through the "fast A20" port (system control port A). */
        inb $0x92, %al
        or $2, %al
        and $0xfe, %al                  /* bit 0 would reset the machine */
        outb %al, $0x92
        lgdtl gdtdesc
        mov %cr0, %eax
        or $1, %eax
        mov %eax, %cr0
        ljmpl $8, $pm32

        .code32
pm32:
        mov $16, %eax
        mov %eax, %ds
        mov %eax, %es
        mov %eax, %fs
        mov %eax, %gs
        mov %eax, %ss
        mov $0x7c00, %esp
        lidt idtdesc

        /* 8259s: master ICW1-4 (edge, cascade, base VECTOR, 8086 mode with
         * auto-EOI: the handler need not write an EOI), then only IRQ0 unmasked. */
        mov $0x11, %al
        outb %al, $0x20
        mov $VECTOR, %al
        outb %al, $0x21
        mov $0x04, %al
        outb %al, $0x21
        mov $0x03, %al
        outb %al, $0x21
        mov $0xfe, %al
        outb %al, $0x21
        mov $0xff, %al
        outb %al, $0xa1

        /* PIT channel 0: mode 2, lobyte/hibyte, reload WAKE_TICKS (the wake-ups). */
        mov $0x34, %al
        outb %al, $0x43
        mov $WAKE_TICKS & 0xff, %al
        outb %al, $0x40
        mov $WAKE_TICKS >> 8, %al
        outb %al, $0x40
        /* PIT channel 2: the clock. Gate on, speaker off; mode 2, reload 65536,
         * so reads count down by one per tick. */
        inb $0x61, %al
        and $0xfc, %al
        or $1, %al
        outb %al, $0x61
        mov $0xb4, %al
        outb %al, $0x43
        xor %al, %al
        outb %al, $0x42
        outb %al, $0x42

        /* esi: last raw PIT count; edi: ticks since boot; ebp: tick of the
         * last marker; ecx: pacing credit in ticks (signed). */
        READ_PIT
        mov %eax, %esi
        xor %edi, %edi
        xor %ebp, %ebp
        xor %ecx, %ecx

        /* The first sweep is unpaced (pace is 0) so the whole range holds
         * data at once; 'A' then says the guest is in its steady loop. */
        mov range_start, %ebx
        call sweep_once
        mov $COM1, %dx
        mov $'A', %al
        outb %al, %dx
        mov ticks_per_page, %eax
        mov %eax, pace
forever:
        mov range_start, %ebx
        call sweep_once
        TICK
        jmp forever

/* Touch every page from ebx to range_end, at most one per `pace` ticks.
 * The wait sleeps until the next interrupt and writes no memory itself (no
 * call, no push; the interrupt's 12-byte frame is its one write, ~1000 a s):
 * under KVM with a dirty ring, where an instruction emulated in the kernel
 * pushes a ring entry for every write it makes, the page touches stay the
 * bulk of the ring. Interrupts are enabled only inside `sti; hlt`. */
sweep_once:
page:
        sub pace, %ecx
wait:
        test %ecx, %ecx
        jns touch
        sti
        hlt                             /* the interrupt resumes at woke */
woke:
        TICK
        jmp wait
touch:
        incl (%ebx)                     /* never 0 again: see above */
        add $4096, %ebx
        cmp range_end, %ebx
        jb page
        ret

/* IRQ0 (auto-EOI): it only ends the hlt. No iret: the kernel's instruction
 * emulator, which runs this guest under PVM (this project's nested KVM),
 * has no protected-mode iret (an emulation failure stops the VM). The frame
 * is dropped instead and the wait goes on with interrupts off, as the
 * interrupt gate left them; it only ever interrupts the hlt above. */
wake:
        add $12, %esp                   /* eip, cs, eflags */
        jmp woke

pace:
        .long 0

        .p2align 3
gdt:
        .quad 0
        .quad 0x00cf9a000000ffff        /* 0x08: code, flat 4 GiB */
        .quad 0x00cf92000000ffff        /* 0x10: data, flat 4 GiB */
gdtdesc:
        .word gdtdesc - gdt - 1
        .long gdt
idtdesc:
        .word VECTOR * 8 + 7            /* vectors above VECTOR: #GP */
        .long gate - VECTOR * 8
        .p2align 3
gate:                                   /* 32-bit interrupt gate, DPL 0 */
        .word wake                      /* offset 15:0 (0x7c00 + ...) */
        .word 8                         /* selector: the code segment */
        .byte 0, 0x8e
        .word 0                         /* offset 31:16 */

        .org PATCH_OFFSET
        .ascii "MTDR"
range_start:
        .long 0x00100000                /* 1 MiB */
range_end:
        .long 0x01100000                /* 17 MiB: 16 MiB dirtied */
ticks_per_page:
        .long 0                         /* 0: unpaced */

        .org 510
        .word 0xaa55
