// A C model of the memory zone's set path, to see what limits its scaling from one core to two:
// SLOTS values of 1 KiB overwritten at random, under one of SHARDS mutexes (mode 1) or none (mode 0).
//   gcc -O2 -pthread shard-lock.c -o shard-lock && ./shard-lock 1 1 && ./shard-lock 1 2
//   (-DSHARDS=256 for more shards). Not built by SwiftPM; never run in CI.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <time.h>
#include <sched.h>
#include <stdatomic.h>
#define SLOTS 10000
#ifndef SHARDS
#define SHARDS 16
#endif
typedef struct { pthread_mutex_t m; long used; char pad[128 - sizeof(pthread_mutex_t) - sizeof(long)]; } shard_t;
typedef struct { char *val; long exp; long size; int credit; } node_t;
static shard_t shards[SHARDS] __attribute__((aligned(128)));
static node_t nodes[SLOTS];
static int mode; static volatile int stop;
static double now(){struct timespec t; clock_gettime(CLOCK_MONOTONIC,&t); return t.tv_sec+t.tv_nsec*1e-9;}
static void *run(void *arg){
  long id=(long)arg; cpu_set_t s; CPU_ZERO(&s); CPU_SET(id,&s); pthread_setaffinity_np(pthread_self(),sizeof s,&s);
  char src[1024]; memset(src,'v',1024); uint64_t x=0x9E3779B97F4A7C15ull*(id+1); long ops=0;
  while(!stop){ for(int i=0;i<64;i++){ x^=x<<13;x^=x>>7;x^=x<<17; int k=x%SLOTS; shard_t*sh=&shards[(x>>40)%SHARDS];
    if(mode) pthread_mutex_lock(&sh->m);
    memcpy(nodes[k].val,src,1024); nodes[k].exp=ops; nodes[k].size=1100; nodes[k].credit=2; sh->used+=0;
    if(mode) pthread_mutex_unlock(&sh->m);
    ops++; } }
  return (void*)ops;
}
int main(int c,char**v){ mode=atoi(v[1]); int th=atoi(v[2]);
  for(int i=0;i<SHARDS;i++) pthread_mutex_init(&shards[i].m,0);
  for(int i=0;i<SLOTS;i++){ nodes[i].val=malloc(1024); memset(nodes[i].val,0,1024);}
  pthread_t t[2]; for(long i=0;i<th;i++) pthread_create(&t[i],0,run,(void*)i);
  struct timespec d={3,0}; nanosleep(&d,0); stop=1; long tot=0; for(int i=0;i<th;i++){void*r; pthread_join(t[i],&r); tot+=(long)r;}
  printf("mode=%d threads=%d ops/s=%.0f\n",mode,th,tot/3.0); }
