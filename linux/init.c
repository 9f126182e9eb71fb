/*
 * hvcall's test init: a static, libc-free x86-64 Linux program that prints
 * a marker on the console and powers the machine off. On hosts where user
 * space cannot make system calls (see the README) it faults on its first
 * one, and the kernel's "Attempted to kill init" panic ends the boot.
 */
#define SYS_WRITE 1
#define SYS_REBOOT 169
#define REBOOT_MAGIC1 0xfee1deadL
#define REBOOT_MAGIC2 0x28121969L
#define REBOOT_CMD_POWER_OFF 0x4321fedcL

static long sys3(long nr, long a, long b, long c)
{
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c)
			 : "rcx", "r11", "memory");
	return ret;
}

static long sys4(long nr, long a, long b, long c, long d)
{
	long ret;
	register long r10 __asm__("r10") = d;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10)
			 : "rcx", "r11", "memory");
	return ret;
}

void _start(void)
{
	static const char marker[] = "hvcall-init: user space reached\n";
	sys3(SYS_WRITE, 1, (long)marker, sizeof(marker) - 1);
	sys4(SYS_REBOOT, REBOOT_MAGIC1, REBOOT_MAGIC2, REBOOT_CMD_POWER_OFF, 0);
	for (;;)
		__asm__ volatile("hlt");
}
