/*
 * migtui lab guest: a 512-byte x86 boot sector that keeps dirtying memory,
 * modelled on QEMU's tests/migration/i386/a-b-bootblock.S.
 *
 * Real mode -> A20 on -> flat GDT -> 32-bit protected mode, then forever:
 * increment one byte in every 4 KiB page of [start, end), sweep after sweep.
 * After a first, unpaced sweep it writes 'A' to COM1, then a 'B' about every
 * 100 ms, so `-serial file:...` keeps growing while the guest runs (a marker
 * after every sweep, as QEMU's guest writes, would be ~100 KB/s under KVM).
 *
 * Pacing: if ticks_per_page is not 0 the guest touches at most one page per
 * that many i8254 PIT ticks (1.193182 MHz), so the dirty rate is the same
 * under KVM and TCG. 0 means as fast as the vCPU goes.
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
        .set COM1, 0x3f8

/* eax = current count of PIT channel 0 (latched, 16 bits). */
        .macro READ_PIT
        xor %eax, %eax
        outb %al, $0x43                 /* latch counter 0 */
        inb $0x40, %al
        mov %al, %ah
        inb $0x40, %al
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

        /* PIT channel 0: mode 2, lobyte/hibyte, reload 65536, so reads count
         * down by one per tick (SeaBIOS leaves it in mode 3, which counts by 2). */
        mov $0x34, %al
        outb %al, $0x43
        xor %al, %al
        outb %al, $0x40
        outb %al, $0x40

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
 * The wait writes no memory (no call, no stack): under KVM with a dirty
 * ring, where an instruction emulated in the kernel pushes a ring entry for
 * every write it makes, only the page touches then fill the ring. */
sweep_once:
page:
        sub pace, %ecx
wait:
        test %ecx, %ecx
        jns touch
        TICK
        jmp wait
touch:
        incb (%ebx)
        add $4096, %ebx
        cmp range_end, %ebx
        jb page
        ret

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
