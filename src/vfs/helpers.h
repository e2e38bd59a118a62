/* SPDX-License-Identifier: GPL-2.0 */
/*
 * unionrs: everything the Rust code needs from C beyond `kernel::bindings`, declared once for
 * both languages. scripts/gen-bindings runs bindgen over this file at build time, so the
 * Rust declarations of the exported kernel functions from the headers below, of the helpers
 * in helpers.c, of the Rust hooks that the C tables call and of the constants here all come
 * from the same text the C compiler reads.
 */
#ifndef UNIONRS_HELPERS_H
#define UNIONRS_HELPERS_H

#include <linux/backing-file.h>
#include <linux/cred.h>
#include <linux/exportfs.h>
#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/fs_parser.h>
#include <linux/fs_stack.h>
#include <linux/fsverity.h>
#include <linux/mount.h>
#include <linux/namei.h>
#include <linux/posix_acl.h>
#include <linux/posix_acl_xattr.h>
#include <linux/ratelimit.h>
#include <linux/security.h>
#include <linux/seq_file.h>
#include <linux/splice.h>
#include <linux/statfs.h>
#include <linux/uio.h>
#include <linux/xattr.h>

/* Mount option numbers: the parameter table (helpers.c) gives them, params.rs reads them. */
enum unionrs_opt {
	UNIONRS_OPT_LOWERDIR,
	UNIONRS_OPT_LOWERDIR_ADD,
	UNIONRS_OPT_DATADIR_ADD,
	UNIONRS_OPT_UPPERDIR,
	UNIONRS_OPT_WORKDIR,
	UNIONRS_OPT_USERXATTR,
	UNIONRS_OPT_INDEX,
	UNIONRS_OPT_METACOPY,
	UNIONRS_OPT_NFS_EXPORT,
	UNIONRS_OPT_REDIRECT_DIR,
	UNIONRS_OPT_XINO,
	UNIONRS_OPT_UUID,
	UNIONRS_OPT_VERITY,
	UNIONRS_OPT_WHITEOUT,
	UNIONRS_OPT_DEFAULT_PERMISSIONS,
	UNIONRS_OPT_FSYNC,
	UNIONRS_OPT_VOLATILE,
	UNIONRS_OPT_OVERRIDE_CREDS,
};

/* The values of the enumerated options, as the parameter table maps their words. */
enum unionrs_redirect_dir {
	UNIONRS_REDIRECT_DIR_OFF,
	UNIONRS_REDIRECT_DIR_FOLLOW,
	UNIONRS_REDIRECT_DIR_NOFOLLOW,
	UNIONRS_REDIRECT_DIR_ON,
};

enum unionrs_xino {
	UNIONRS_XINO_OFF,
	UNIONRS_XINO_AUTO,
	UNIONRS_XINO_ON,
};

enum unionrs_uuid {
	UNIONRS_UUID_OFF,
	UNIONRS_UUID_NULL,
	UNIONRS_UUID_AUTO,
	UNIONRS_UUID_ON,
};

/* verity= */
enum unionrs_verity {
	UNIONRS_VERITY_OFF,
	UNIONRS_VERITY_ON,
	UNIONRS_VERITY_REQUIRE,
};

/* fsync= */
enum unionrs_fsync {
	UNIONRS_FSYNC_AUTO,
	UNIONRS_FSYNC_STRICT,
	UNIONRS_FSYNC_VOLATILE,
};

/* Kernel constants that bindgen cannot evaluate (BIT() and casts), under our prefix. */
enum unionrs_kernel_constants {
	UNIONRS_LOOKUP_FOLLOW = LOOKUP_FOLLOW,
	UNIONRS_LOOKUP_BENEATH = LOOKUP_BENEATH,
	UNIONRS_LOOKUP_NO_SYMLINKS = LOOKUP_NO_SYMLINKS,
	UNIONRS_LOOKUP_NO_XDEV = LOOKUP_NO_XDEV,
	UNIONRS_SB_RDONLY = SB_RDONLY,
	UNIONRS_SB_POSIXACL = SB_POSIXACL,
	UNIONRS_SB_I_SKIP_SYNC = SB_I_SKIP_SYNC,
	UNIONRS_FMODE_OPENED = (__force unsigned int)FMODE_OPENED,
	UNIONRS_ACL_TYPE_ACCESS = ACL_TYPE_ACCESS,
	UNIONRS_ACL_TYPE_DEFAULT = ACL_TYPE_DEFAULT,
	UNIONRS_ACL_USER = ACL_USER,
	UNIONRS_ACL_GROUP = ACL_GROUP,
	UNIONRS_SPLICE_F_MOVE = SPLICE_F_MOVE,
	UNIONRS_RENAME_NOREPLACE = RENAME_NOREPLACE,
	UNIONRS_RENAME_EXCHANGE = RENAME_EXCHANGE,
	UNIONRS_RENAME_WHITEOUT = RENAME_WHITEOUT,
	UNIONRS_FS_VERITY_MAX_DIGEST_SIZE = FS_VERITY_MAX_DIGEST_SIZE,
	UNIONRS_IOCB_SYNC_FLAGS = IOCB_DSYNC | IOCB_SYNC,
};

/* Where the entries of a POSIX ACL are (the type is opaque to Rust). */
enum unionrs_posix_acl_layout {
	UNIONRS_POSIX_ACL_COUNT_OFFSET = offsetof(struct posix_acl, a_count),
	UNIONRS_POSIX_ACL_ENTRIES_OFFSET = offsetof(struct posix_acl, a_entries),
};

/* A pointer constant, as its (negative) integer value. */
enum unionrs_kernel_pointers {
	UNIONRS_ACL_DONT_CACHE = (long)ACL_DONT_CACHE,
};

/* The filesystem type (helpers.c), registered by Rust. */
extern struct file_system_type unionrs_fs_type;

/* Rust hooks that the C tables call (src/vfs/fs_type.rs checks them against these). */
void *unionrs_rs_fc_alloc(void);
void unionrs_rs_fc_free(void *cfg);
int unionrs_rs_parse_param(struct fs_context *fc, void *cfg, int opt, const char *string,
			   struct file *file, u32 uint_32);
int unionrs_rs_parse_monolithic(struct fs_context *fc, void *data);
int unionrs_rs_fill_super(struct super_block *sb, struct fs_context *fc, void *cfg);
int unionrs_rs_reconfigure(struct fs_context *fc, void *cfg, struct super_block *sb,
			   bool wants_rw);
void unionrs_rs_free_sb_info(void *info);

/* Helpers (helpers.c): one static inline function, macro or opaque field each. */
void unionrs_fc_log(struct fs_context *fc, char level, const char *msg);
bool unionrs_log_ratelimit(void);
bool unionrs_sb_has_encoding(const struct super_block *sb);
void unionrs_seq_show_option(struct seq_file *m, const char *name, const char *value);
const struct cred *unionrs_override_creds(const struct cred *cred);
const struct cred *unionrs_revert_creds(const struct cred *old);
const struct cred *unionrs_current_cred(void);
struct mnt_idmap *unionrs_mnt_idmap(struct vfsmount *mnt);
bool unionrs_inode_is_new(struct inode *inode);
unsigned long unionrs_inode_state_read(struct inode *inode);
void unionrs_inode_state_set(struct inode *inode, unsigned long flags);
void unionrs_inode_state_clear(struct inode *inode, unsigned long flags);
void unionrs_inode_lock(struct inode *inode);
void unionrs_inode_unlock(struct inode *inode);
int unionrs_get_write_access(struct inode *inode);
void unionrs_put_write_access(struct inode *inode);
void unionrs_end_creating(struct dentry *child);
struct dentry *unionrs_end_creating_keep(struct dentry *child);
void unionrs_end_removing(struct dentry *child);
size_t unionrs_iov_iter_count(const struct iov_iter *iter);
void unionrs_init_sync_kiocb(struct kiocb *kiocb, struct file *file);
void unionrs_posix_acl_release(struct posix_acl *acl);
void unionrs_do_delayed_call(struct delayed_call *call);
bool unionrs_fatal_signal_pending(void);
int unionrs_mutex_lock_interruptible(struct mutex *lock);
int unionrs_security_inode_copy_up_xattr(struct dentry *src, const char *name);
int unionrs_security_inode_copy_up(struct dentry *src, struct cred **new);
int unionrs_security_dentry_create_files_as(struct dentry *dentry, int mode,
					    const struct cred *old, struct cred *new);
bool unionrs_fsverity_info_loaded(const struct inode *inode);
bool unionrs_fsverity_active(const struct inode *inode);
int unionrs_fsverity_get_digest(struct inode *inode, u8 *digest, u8 *alg);
void unionrs_super_set_uuid(struct super_block *sb, const u8 *uuid);

#endif /* UNIONRS_HELPERS_H */
